"""A `flask` command's changes are audited as the command line (the OS account), with no address."""

from __future__ import annotations

import getpass
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from smsdash.compose.service import Recipient, compose_message
from smsdash.models import User, utcnow
from smsdash.schedules.when import Later
from tests.audit.helpers import only_entry


@pytest.fixture(autouse=True)
def _push_request_context() -> None:
    """Overrides pytest-flask's fixture of that name, which pushes a request context around every
    test: a real `flask` command runs without one, and record() tells the two apart by it."""


def test_canceling_from_the_command_line_names_the_os_account(
    app: Flask, runner: FlaskCliRunner, operator: User
) -> None:
    with app.app_context():
        later = Later((utcnow() + timedelta(hours=2)).replace(second=0, microsecond=0), "UTC")
        message_id = compose_message("Shift at 7", [Recipient("+14155550101")], operator.id, later=later).id
    result = runner.invoke(args=["sms", "cancel", str(message_id)])
    assert result.exit_code == 0, result.output
    entry = only_entry(app, "message.cancel")
    assert (entry.actor_id, entry.actor_label, entry.address) == (None, f"cli:{getpass.getuser()}", None)
    assert (entry.target_type, entry.target_id, entry.details) == ("message", message_id, {"deliveries": 1})
