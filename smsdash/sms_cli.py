"""The `sms` command group: `flask --app wsgi sms send --to NUMBER [--to ...] --body TEXT`.

The group lives here so other commands about messages (`sms reconcile`) join the same group.
"""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .compose import Recipient, compose_message, waiting_for_redis_note
from .message_body import body_problem, normalize_line_breaks
from .phones import parse_many

sms = AppGroup("sms", help="Send and inspect SMS from the command line.")


@sms.command("send")
@click.option("--to", "numbers", multiple=True, required=True,
              help="Recipient number, E.164 or national (DEFAULT_PHONE_REGION); repeat for more.")
@click.option("--body", required=True, help="The message text.")
def send_command(numbers: tuple[str, ...], body: str) -> None:
    """Create a message to every --to number and enqueue its sends; print the message id
    (alone on stdout, so scripts can capture it).

    Every number is checked first: if any is invalid, each bad one is named and nothing is
    created, so a typo never sends to half a list."""
    body = normalize_line_breaks(body)
    problem = body_problem(body)
    if problem:
        raise click.BadParameter(problem, param_hint="--body")
    parsed = parse_many(numbers, current_app.config.get("DEFAULT_PHONE_REGION") or "US")
    if parsed.errors:
        for error in parsed.errors:
            click.echo(f"invalid number {error.raw!r}: {error.reason}", err=True)
        raise click.ClickException(f"{len(parsed.errors)} invalid number(s); nothing was sent")
    message = compose_message(body, [Recipient(n) for n in parsed.numbers], author_id=None)
    note = waiting_for_redis_note(message.id)
    if note:
        click.echo(note, err=True)
    click.echo(f"{len(parsed.numbers)} deliveries queued for message:", err=True)
    click.echo(message.id)


def init_app(app: Flask) -> None:
    app.cli.add_command(sms)
