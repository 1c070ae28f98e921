"""Every command group of `flask --app wsgi …`, each command a thin wrapper over a domain function.

    users create EMAIL --role ROLE / list / set-role EMAIL ROLE / deactivate EMAIL / reactivate EMAIL
    sms send / scheduled / cancel / reconcile
    twilio check / configure-webhooks
    webhooks pending              worker [--burst]

Commands import their feature code when they run, so `flask --help` and the web process do not
load the worker or the Twilio client for nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from smsdash.auth.roles import ROLES

if TYPE_CHECKING:
    from smsdash.compose.personalise import Recipient
    from smsdash.models import User
    from smsdash.schedules.when import Later

users = AppGroup("users", help="Manage operator accounts.")
sms = AppGroup("sms", help="Send and inspect SMS from the command line.")
twilio = AppGroup("twilio", help="Check the Twilio set-up and point Twilio's webhooks at this app.")
webhooks = AppGroup("webhooks", help="Inspect what Twilio's webhooks brought in.")

CHECK_MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]  # a LocalProxy, typed as Flask


# --- users -------------------------------------------------------------------------------------


# The roles are a tiny module of constants, safe to import with the commands.
ROLE_CHOICE = click.Choice(ROLES, case_sensitive=False)
CREATE_HINTS = {"email": "EMAIL", "password": "--password", "role": "--role"}


def _operator(email: str) -> User:
    from smsdash.auth.operators import find_user

    user = find_user(email)
    if user is None:
        raise click.BadParameter(f"no operator has the email {email}", param_hint="EMAIL")
    return user


@users.command("create")
@click.argument("email")
@click.option("--role", type=ROLE_CHOICE, help="admin, sender or viewer; the first operator is an admin unless told.")
@click.option("--password", help="The new operator's password (prompted for when left out).")
def create_user(email: str, role: str | None, password: str | None) -> None:
    """Create an operator who can log in with EMAIL and the password."""
    from smsdash.auth.operators import OperatorError, OperatorExists
    from smsdash.team.operators import add_operator, has_operators

    if role is None:
        if has_operators():
            raise click.UsageError(
                "give --role admin, sender or viewer (only the first operator is an admin by default)"
            )
        role = "admin"
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = add_operator(email, role, password)
    except OperatorExists as exc:
        raise click.ClickException(str(exc)) from exc
    except OperatorError as exc:
        raise click.BadParameter(str(exc), param_hint=CREATE_HINTS.get(exc.field)) from exc
    click.echo(f"Created operator {user.email} ({user.role}).")


@users.command("list")
def list_users() -> None:
    """List every operator: email, role, status and last log-in, in aligned columns."""
    from smsdash.team.operators import operators

    rows = [
        (
            user.email,
            user.role,
            "active" if user.is_active else f"deactivated {user.deactivated_at:%Y-%m-%d}",
            f"{user.last_login_at:%Y-%m-%d %H:%M} UTC" if user.last_login_at else "never",
        )
        for user in operators()
    ]
    table = [("EMAIL", "ROLE", "STATUS", "LAST LOG-IN"), *rows]
    widths = [max(len(row[column]) for row in table) for column in range(3)]  # the last column is not padded
    for *cells, last in table:
        click.echo("  ".join([*(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)), last]))


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=ROLE_CHOICE)
def set_role(email: str, role: str) -> None:
    """Give operator EMAIL the role ROLE (admin, sender or viewer)."""
    from smsdash.auth.operators import OperatorError
    from smsdash.team.operators import change_role

    user = _operator(email)
    try:
        changed = change_role(user, role)
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{user.email} is {'now' if changed else 'already'} {user.role}.")


@users.command("deactivate")
@click.argument("email")
def deactivate_user(email: str) -> None:
    """Stop operator EMAIL logging in and end every session they have."""
    from smsdash.auth.operators import OperatorError
    from smsdash.team.operators import deactivate

    user = _operator(email)
    try:
        changed = deactivate(user)
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Deactivated {user.email}; every session of theirs has ended."
        if changed
        else f"{user.email} was already deactivated."
    )


@users.command("reactivate")
@click.argument("email")
def reactivate_user(email: str) -> None:
    """Let operator EMAIL log in again (with their old password)."""
    from smsdash.team.operators import reactivate

    user = _operator(email)
    click.echo(f"Reactivated {user.email}." if reactivate(user) else f"{user.email} was already active.")


# --- sms ---------------------------------------------------------------------------------------


@sms.command("send")
@click.option(
    "--to",
    "numbers",
    multiple=True,
    help="Recipient number, E.164 or national (DEFAULT_PHONE_REGION); repeat for more.",
)
@click.option(
    "--csv",
    "sheet",
    type=click.Path(exists=True, dir_okay=False),
    help="A spreadsheet (.csv or .xlsx) whose first row names the columns, one of them the phone.",
)
@click.option("--body", required=True, help="The message text; {{field}} and {{ field | fallback }} are filled in.")
@click.option("--at", "at", help='Send later, at this local time: "2026-12-03 06:00" (in --tz).')
@click.option("--tz", "tz", help="The time zone of --at, e.g. America/Chicago (default: DEFAULT_TIMEZONE).")
@click.option(
    "--valid-for",
    "valid_for",
    type=click.IntRange(1, 36_000),
    help="Seconds Twilio may keep trying (ValidityPeriod, 1-36000); undelivered by then, it fails with 30036.",
)
@click.option("--ignore-quiet-hours", is_flag=True, help="Urgent: send even to recipients inside QUIET_HOURS.")
def send_command(
    numbers: tuple[str, ...],
    sheet: str | None,
    body: str,
    at: str | None,
    tz: str | None,
    valid_for: int | None,
    ignore_quiet_hours: bool,
) -> None:
    """Create a message to every --to number (or every row of --csv) and enqueue its sends; print
    the message id (alone on stdout, so scripts can capture it).

    Placeholders are filled from the contact a number belongs to, or from the spreadsheet row.
    Everything is checked first: an invalid number, a bad row or a recipient whose text cannot be
    sent is named and nothing is created, so a typo never sends to half a list. With --at, the
    deliveries wait as scheduled until that time; a time past or too far ahead is refused."""
    from smsdash.compose.approval import awaiting_note
    from smsdash.compose.service import ComposeRefused, Recipient, compose_message
    from smsdash.sending.queue import waiting_for_redis_note
    from smsdash.sms.body import normalize_line_breaks
    from smsdash.sms.phones import parse_many

    if bool(numbers) == bool(sheet):
        raise click.UsageError("give --to NUMBER (repeatable) or --csv FILE")
    if tz and not at:
        raise click.UsageError("--tz is the zone of --at; give --at too")
    later = _later(at, tz) if at else None
    body = normalize_line_breaks(body)
    region = current_app.config.get("DEFAULT_PHONE_REGION") or "US"
    if sheet:
        recipients = _sheet_recipients(sheet, body, region)
    else:
        parsed = parse_many(numbers, region)
        if parsed.errors:
            for error in parsed.errors:
                click.echo(f"invalid number {error.raw!r}: {error.reason}", err=True)
            raise click.ClickException(f"{len(parsed.errors)} invalid number(s); nothing was sent")
        recipients = [Recipient(n) for n in parsed.numbers]
    try:
        message = compose_message(
            body,
            recipients,
            author_id=None,
            later=later,
            validity_seconds=valid_for,
            ignore_quiet_hours=ignore_quiet_hours,
        )
    except ComposeRefused as refused:  # nothing was stored: the same refusal as the page's
        raise click.BadParameter(" ".join(refused.problems), param_hint="--body") from None
    note = waiting_for_redis_note(message.id)
    if note:
        click.echo(note, err=True)
    held = awaiting_note(message)
    if held:
        # No `sms approve`: approving needs a second operator's identity, and the command line has
        # none (anyone with a shell could approve their own send), so it is done on the message page.
        click.echo(f"{held} Nothing more to do here.", err=True)
    elif later:
        from smsdash.schedules.when import describe

        click.echo(f"{message.recipient_count} deliveries scheduled for {describe(later.at, later.zone)}:", err=True)
    else:
        click.echo(f"{message.recipient_count} deliveries queued for message:", err=True)
    click.echo(message.id)


def _later(at: str, tz: str | None) -> Later:
    """--at in --tz (or DEFAULT_TIMEZONE), checked, or the refusal as a bad --at."""
    from smsdash.models import utcnow
    from smsdash.schedules.when import ScheduleRefused, send_time

    config = current_app.config
    try:
        return send_time(at, tz or config["DEFAULT_TIMEZONE"], now=utcnow(), max_days=config["SCHEDULE_MAX_DAYS"])
    except ScheduleRefused as exc:
        raise click.BadParameter(f"{exc}; nothing was sent", param_hint="--at") from None


def _sheet_recipients(path: str, body: str, region: str) -> list[Recipient]:
    """Every good row of the spreadsheet at `path`, or a ClickException naming each bad one."""
    from smsdash.compose.spreadsheet import SpreadsheetError, read_sheet

    try:
        with open(path, "rb") as stream:
            sheet = read_sheet(stream, path, body, region)
    except SpreadsheetError as exc:
        raise click.ClickException(f"{exc}; nothing was sent") from None
    if sheet.errors:
        for line, reason in sheet.errors:
            click.echo(f"line {line}: {reason}", err=True)
        raise click.ClickException(f"{len(sheet.errors)} bad row(s); nothing was sent")
    return sheet.recipients


@sms.command("scheduled")
def scheduled_command() -> None:
    """List the messages waiting to be sent, the next one first."""
    from smsdash.schedules.manage import waiting
    from smsdash.schedules.when import describe

    entries = waiting()
    for entry in entries:
        message = entry.message
        click.echo(
            f"message {message.id}  {describe(entry.next_at, message.send_zone or 'UTC')}  "
            f"{entry.count} recipient(s)  by {entry.author}  {message.body[:40]!r}"
        )
    click.echo(f"{len(entries)} message(s) waiting.")


@sms.command("cancel")
@click.argument("message_id", type=int)
def cancel_command(message_id: int) -> None:
    """Cancel what is still waiting of scheduled message MESSAGE_ID (nothing sent is affected)."""
    from smsdash.schedules.manage import NotScheduled, cancel

    try:
        count = cancel(message_id, None)
    except NotScheduled as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Canceled {count} scheduled deliveries of message {message_id}.")


@sms.command("reconcile")
@click.option("--message", "message_id", type=int, help="Check every non-final delivery of this message now.")
def reconcile_command(message_id: int | None) -> None:
    """Ask Twilio about deliveries whose status callbacks never came, and print what changed."""
    from smsdash.extensions import db
    from smsdash.models import Message
    from smsdash.sending.reconciler import reconcile

    if message_id is not None and db.session.get(Message, message_id) is None:
        raise click.ClickException(f"no message {message_id}")
    report = reconcile(_app(), message_id=message_id)
    if report.skipped:
        raise click.ClickException(f"did not run: {report.skipped}")
    for change in report.changes:
        click.echo(str(change))
    for note in report.notes:
        click.echo(f"note: {note}")
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(f"checked {report.checked} deliveries, changed {len(report.changes)}.")
    if report.errors:
        raise SystemExit(1)


# --- twilio ------------------------------------------------------------------------------------


@twilio.command("check")
@click.option("--no-self-test", is_flag=True, help="Skip POSTing a signed test callback to the webhook.")
def check_command(no_self_test: bool) -> None:
    """Run the set-up checklist; exit 1 when any item fails."""
    from smsdash.setup.checks import run_checks

    results = run_checks(_app(), self_test=not no_self_test)
    for result in results:
        click.echo(f"[{CHECK_MARKS[result.state]}] {result.name}: {result.detail}")
        if result.fix and result.state != "ok":
            click.echo(f"       fix: {result.fix}")
    failed = sum(r.state == "fail" for r in results)
    warned = sum(r.state == "warn" for r in results)
    click.echo(f"{len(results)} checks: {failed} failed, {warned} warnings.")
    if failed:
        raise SystemExit(1)


@twilio.command("configure-webhooks")
@click.argument("base_url")
@click.option("--dry-run", is_flag=True, help="Print the changes without making them.")
def configure_webhooks_command(base_url: str, dry_run: bool) -> None:
    """Point the Messaging Service (or the From number) at BASE_URL's webhooks."""
    from requests import RequestException
    from twilio.base.exceptions import TwilioException

    from smsdash.setup.webhook_setup import BadBaseURL, normalize_base_url, plan
    from smsdash.twilio.client import TwilioCredentialsMissing
    from smsdash.twilio.error_codes import twilio_error_text

    try:
        base = normalize_base_url(base_url)
    except BadBaseURL as exc:
        raise click.BadParameter(str(exc), param_hint="BASE_URL") from exc
    try:
        proposed = plan(_app(), base)
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


# --- webhooks ----------------------------------------------------------------------------------


@webhooks.command("pending")
@click.option("--older-than", default=10, show_default=True, help="Minutes an entry has waited.")
def pending_command(older_than: int) -> None:
    """List status callbacks that still match no delivery (`flask --app wsgi webhooks pending`).

    Entries that wait long are callbacks for messages this app did not send (another app on the
    same Twilio account or Messaging Service) or whose send job died before storing the SID.
    """
    from smsdash.delivery.pending import unmatched

    entries = unmatched(timedelta(minutes=older_than))
    for entry in entries:
        click.echo(
            f"{entry.received_at:%Y-%m-%d %H:%M:%S} UTC  {entry.message_sid}  {entry.status}  "
            f"to {entry.payload.get('To', '?')}"
        )
    click.echo(f"{len(entries)} unmatched callback(s) older than {older_than} min.")


# --- worker ------------------------------------------------------------------------------------


@click.command("worker")
@click.option("--burst", is_flag=True, help="Work until the queue and the scheduled retries are done, then exit.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker (with its scheduler and periodic tasks) inside the app context."""
    from smsdash.worker.runner import run_worker

    run_worker(_app(), burst=burst)


def init_app(app: Flask) -> None:
    for command in (users, sms, twilio, webhooks, worker_command):
        app.cli.add_command(command)
