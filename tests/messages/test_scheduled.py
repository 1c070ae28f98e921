"""The scheduled page: what goes out next, when (its zone and UTC), to how many, by whom, with a
countdown; edit and cancel from it, refused once the message has gone out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.compose.service import Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message, User, utcnow
from smsdash.schedules.release import release_due
from smsdash.schedules.when import Later, countdown
from tests.conftest import csrf_token_from

CHICAGO = ZoneInfo("America/Chicago")


def _schedule(app: Flask, operator: User, minutes: float = 90) -> int:
    with app.app_context():
        later = Later((utcnow() + timedelta(minutes=minutes)).replace(second=0, microsecond=0), "America/Chicago")
        return compose_message(
            "Shift at 7", [Recipient("+14155550101"), Recipient("+14155550102")], operator.id, later=later
        ).id


def _token(client: FlaskClient) -> str:
    return csrf_token_from(client.get("/scheduled").get_data(as_text=True))


def test_the_page_lists_what_goes_out_next_with_a_countdown(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    later_id = _schedule(app, operator, 180)
    sooner_id = _schedule(app, operator, 90)
    html = logged_in.get("/scheduled").get_data(as_text=True)
    assert html.index(f"Message #{sooner_id}") < html.index(f"Message #{later_id}")
    assert "America/Chicago (" in html and " UTC)" in html
    assert "2 recipients · by op@example.com" in html
    assert "data-countdown>in 1 h 30 min</time>" in html
    assert f'action="/scheduled/{sooner_id}/cancel"' in html and f'action="/scheduled/{sooner_id}/edit"' in html
    show = logged_in.get(f"/messages/{sooner_id}").get_data(as_text=True)
    assert "Scheduled for " in show and 'href="/scheduled"' in show


def test_countdown_words() -> None:
    now = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    assert countdown(now + timedelta(seconds=45), now) == "in 45 s"
    assert countdown(now + timedelta(minutes=4, seconds=5), now) == "in 4 min 5 s"
    assert countdown(now + timedelta(hours=3, minutes=9, seconds=30), now) == "in 3 h 10 min"
    assert countdown(now + timedelta(days=2, hours=1), now) == "in 2 d 1 h"
    assert countdown(now - timedelta(seconds=1), now) == "due now"


def test_cancel_from_the_page(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    message_id = _schedule(app, operator)
    response = logged_in.post(f"/scheduled/{message_id}/cancel", data={"csrf_token": _token(logged_in)})
    assert response.status_code == 302
    page = logged_in.get("/scheduled").get_data(as_text=True)
    assert "canceled: 2 deliveries will not be sent" in page and "Nothing is scheduled" in page
    with app.app_context():
        assert set(db.session.scalars(select(Delivery.status))) == {"canceled"}
        details = db.session.scalars(select(Event.detail).where(Event.event_type == "canceled")).all()
        assert details == ["canceled before it was sent, by op@example.com"] * 2


def test_edit_time_and_text_from_the_page(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    message_id = _schedule(app, operator)
    local = (datetime.now(CHICAGO) + timedelta(days=1)).replace(second=0, microsecond=0)
    response = logged_in.post(
        f"/scheduled/{message_id}/edit",
        data={
            "csrf_token": _token(logged_in),
            "send_at": f"{local:%Y-%m-%dT%H:%M}",
            "send_zone": "America/Chicago",
            "body": "Shift at 8",
        },
    )
    assert response.status_code == 302
    assert "saved: to be sent" in logged_in.get("/scheduled").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Message, message_id).send_at == local.astimezone(UTC)
        assert set(db.session.scalars(select(Delivery.body))) == {"Shift at 8"}
        assert set(db.session.scalars(select(Delivery.send_after))) == {local.astimezone(UTC)}


def test_a_past_time_or_a_released_message_changes_nothing(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    message_id = _schedule(app, operator)
    past = (datetime.now(CHICAGO) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    fields = {"csrf_token": _token(logged_in), "send_zone": "America/Chicago", "body": "Changed"}
    logged_in.post(f"/scheduled/{message_id}/edit", data={**fields, "send_at": past})
    assert "Not changed: " in logged_in.get("/scheduled").get_data(as_text=True)
    with app.app_context():
        assert set(db.session.scalars(select(Delivery.body))) == {"Shift at 7"}
        db.session.execute(Delivery.__table__.update().values(send_after=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        assert release_due() == 2
    soon = (datetime.now(CHICAGO) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    logged_in.post(f"/scheduled/{message_id}/edit", data={**fields, "send_at": soon})
    assert "nothing waiting to be sent" in logged_in.get("/scheduled").get_data(as_text=True)
    logged_in.post(f"/scheduled/{message_id}/cancel", data={"csrf_token": fields["csrf_token"]})
    assert "Not canceled: " in logged_in.get("/scheduled").get_data(as_text=True)
    with app.app_context():
        assert set(db.session.scalars(select(Delivery.status))) == {"queued"}
        assert set(db.session.scalars(select(Delivery.body))) == {"Shift at 7"}
