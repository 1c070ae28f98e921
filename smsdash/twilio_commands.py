"""The `twilio` CLI group: `twilio check` and `twilio configure-webhooks BASE_URL [--dry-run]`."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from requests import RequestException
from twilio.base.exceptions import TwilioException

from .setup_checks import run_checks, twilio_error_text
from .twilio_client import TwilioCredentialsMissing
from .webhook_setup import BadBaseURL, normalize_base_url, plan

twilio_cli = AppGroup("twilio", help="Check the Twilio set-up and point Twilio's webhooks at this app.")

MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


@twilio_cli.command("check")
@click.option("--no-self-test", is_flag=True, help="Skip POSTing a signed test callback to the webhook.")
def check_command(no_self_test: bool) -> None:
    """Run the set-up checklist; exit 1 when any item fails."""
    results = run_checks(current_app._get_current_object(), self_test=not no_self_test)  # type: ignore[attr-defined]
    for result in results:
        click.echo(f"[{MARKS[result.state]}] {result.name}: {result.detail}")
        if result.fix and result.state != "ok":
            click.echo(f"       fix: {result.fix}")
    failed = sum(r.state == "fail" for r in results)
    warned = sum(r.state == "warn" for r in results)
    click.echo(f"{len(results)} checks: {failed} failed, {warned} warnings.")
    if failed:
        raise SystemExit(1)


@twilio_cli.command("configure-webhooks")
@click.argument("base_url")
@click.option("--dry-run", is_flag=True, help="Print the changes without making them.")
def configure_webhooks_command(base_url: str, dry_run: bool) -> None:
    """Point the Messaging Service (or the From number) at BASE_URL's webhooks."""
    try:
        base = normalize_base_url(base_url)
    except BadBaseURL as exc:
        raise click.BadParameter(str(exc), param_hint="BASE_URL") from exc
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        proposed = plan(app, base)
    except (LookupError, TwilioCredentialsMissing) as exc:
        raise click.ClickException(str(exc)) from exc
    except (TwilioException, RequestException) as exc:
        raise click.ClickException(f"{twilio_error_text(exc)} (run `flask --app wsgi twilio check`)") from exc
    for change in proposed.changes:
        if change.needed:
            click.echo(f"{change.target} {change.field}: {change.before or '(not set)'} -> {change.after}")
        else:
            click.echo(f"{change.target} {change.field}: {change.after} (already set)")
    if not any(c.needed for c in proposed.changes):
        click.echo("Nothing to change.")
    elif dry_run:
        click.echo("Dry run: nothing was changed at Twilio.")
    else:
        try:
            proposed.apply()
        except (TwilioException, RequestException) as exc:
            raise click.ClickException(f"Twilio refused the update: {twilio_error_text(exc)}") from exc
        click.echo("Updated at Twilio.")
    for note in proposed.notes:
        click.echo(f"Note: {note}")


def init_app(app: Flask) -> None:
    app.cli.add_command(twilio_cli)
