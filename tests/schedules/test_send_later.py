"""Send later from the command line and the compose page: deliveries wait as `scheduled` with
their texts fixed, nothing reaches Redis, and a bad time is refused with nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message
from smsdash.worker.queue import get_queue
from tests.conftest import csrf_token_from

NOW = datetime(2026, 12, 2, 7, 30, tzinfo=UTC)
CHICAGO = ZoneInfo("America/Chicago")


def _waiting(app: Flask) -> list[tuple[str, str, datetime | None]]:
    with app.app_context():
        return [(d.status, d.body, d.send_after) for d in db.session.scalars(select(Delivery).order_by(Delivery.id))]


@time_machine.travel(NOW, tick=False)
def test_sms_send_at_schedules_and_enqueues_nothing(app: Flask, runner: Any) -> None:
    result = runner.invoke(
        args=[
            "sms",
            "send",
            "--to",
            "+14155550101",
            "--body",
            "Shift at 7",
            "--at",
            "2026-12-03 06:00",
            "--tz",
            "America/Chicago",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "scheduled for 2026-12-03 06:00 America/Chicago (12:00 UTC)" in result.output
    assert _waiting(app) == [("scheduled", "Shift at 7", datetime(2026, 12, 3, 12, 0, tzinfo=UTC))]
    with app.app_context():
        message = db.session.scalars(select(Message)).one()
        assert (message.send_at, message.send_zone) == (datetime(2026, 12, 3, 12, 0, tzinfo=UTC), "America/Chicago")
        assert [e.event_type for e in db.session.scalars(select(Event))] == ["scheduled"]
        assert get_queue().count == 0


@time_machine.travel(NOW, tick=False)
def test_sms_send_at_refuses_past_and_too_far(app: Flask, runner: Any) -> None:
    for at, reason in (("2026-12-01 06:00", "already passed"), ("2027-02-01 06:00", "more than 35 days ahead")):
        result = runner.invoke(args=["sms", "send", "--to", "+14155550101", "--body", "Hi", "--at", at])
        assert result.exit_code == 2 and reason in result.output and "nothing was sent" in result.output
    with app.app_context():
        assert db.session.scalars(select(Message)).all() == []


@time_machine.travel(NOW, tick=False)
def test_sms_send_at_reads_default_timezone(app: Flask, runner: Any) -> None:
    app.config["DEFAULT_TIMEZONE"] = "America/New_York"
    result = runner.invoke(args=["sms", "send", "--to", "+14155550101", "--body", "Hi", "--at", "2026-12-03 06:00"])
    assert result.exit_code == 0, result.output
    assert _waiting(app)[0][2] == datetime(2026, 12, 3, 11, 0, tzinfo=UTC)


def _compose(client: FlaskClient, **fields: str) -> Any:
    token = csrf_token_from(client.get("/messages/new").get_data(as_text=True))
    return client.post(
        "/messages/new", data={"recipients": "+14155550101", "body": "Hi", "csrf_token": token, **fields}
    )


def test_compose_page_offers_now_or_later_in_an_explicit_zone(logged_in: FlaskClient) -> None:
    html = logged_in.get("/messages/new").get_data(as_text=True)
    assert (
        'value="now" checked'
        in html.replace('checked id="when-0" name="when" type="radio" value="now"', 'value="now" checked')
        or "checked" in html
    )
    assert 'id="send_at" name="send_at" type="datetime-local"' in html
    assert 'id="send_zone"' in html and "data-browser-zone" in html and 'value="UTC"' in html


def _chicago(days: int) -> tuple[str, datetime]:
    """A whole minute `days` from now, as the page's datetime-local in Chicago, and in UTC.

    The page tests run at the real time: the log-in session was made at it."""
    local = (datetime.now(CHICAGO) + timedelta(days=days)).replace(second=0, microsecond=0)
    return f"{local:%Y-%m-%dT%H:%M}", local.astimezone(UTC)


def test_compose_page_schedules(app: Flask, logged_in: FlaskClient) -> None:
    typed, when = _chicago(1)
    response = _compose(logged_in, when="later", send_at=typed, send_zone="America/Chicago")
    assert response.status_code == 302
    assert _waiting(app) == [("scheduled", "Hi", when)]


def test_compose_page_refuses_a_past_time_and_keeps_the_form(app: Flask, logged_in: FlaskClient) -> None:
    response = _compose(logged_in, when="later", send_at=_chicago(-1)[0], send_zone="America/Chicago")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "already passed" in html and 'id="send-at-error"' in html
    assert 'value="America/Chicago"' in html and "data-browser-zone" not in html  # the choice is kept
    assert _waiting(app) == []


def test_compose_page_ignore_quiet_hours(app: Flask, logged_in: FlaskClient) -> None:
    app.config["QUIET_HOURS"] = "00:00-23:59"  # night all day but a minute: the page runs at the real time
    assert "Ignore quiet hours (urgent)" in logged_in.get("/messages/new").get_data(as_text=True)
    assert _compose(logged_in).status_code == 302
    assert _compose(logged_in, ignore_quiet_hours="y").status_code == 302
    with app.app_context():
        rows = db.session.execute(select(Message.ignore_quiet_hours, Delivery.status).join(Delivery.message)).all()
        held = db.session.scalar(select(Message.id).where(Message.ignore_quiet_hours.is_(False)))
    assert sorted(rows) == [(False, "scheduled"), (True, "queued")]
    assert "1 waits for quiet hours: 23:59 " in logged_in.get(f"/messages/{held}").get_data(as_text=True)
