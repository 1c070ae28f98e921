"""The Twilio client's guard: a request made with a database transaction open is logged."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import Delivery
from smsdash.twilio.client import get_client


def test_a_twilio_request_inside_a_transaction_is_logged_with_its_caller(
    twilio_app: Flask, twilio_in_transaction: Callable[[], list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    with twilio_app.app_context():
        client = get_client()
        client.messages.list(limit=1)
        assert twilio_in_transaction() == []  # no session yet

        db.session.execute(select(Delivery.id).limit(1))  # a read is enough: PostgreSQL idles in it
        client.messages.list(limit=1)
        [warning] = twilio_in_transaction()
        assert warning.startswith("Twilio request GET /2010-04-01/Accounts/")
        assert "with a database transaction open" in warning
        [record] = [r for r in caplog.records if r.name == "smsdash.twilio.client"]
        assert record.levelno == logging.WARNING and "test_client.py" in (record.stack_info or "")

        db.session.commit()
        client.messages.list(limit=1)
        assert len(twilio_in_transaction()) == 1  # ended: nothing new
    caplog.clear()  # the warning was this test's point: twilio_app's teardown must not fail on it
