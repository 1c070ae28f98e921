"""Quiet hours: a text that would reach someone inside QUIET_HOURS in their own local time waits
until the window opens there. New York (+1 212) and Honolulu (+1 808) around the edges, a
prefix spanning two zones, the urgent override, and a held delivery staying out of Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from smsdash.compose.service import Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message
from smsdash.schedules.quiet_hours import Hold, QuietHours, hold_for, waiting_note
from smsdash.schedules.release import release_due
from smsdash.schedules.when import Later
from smsdash.simulator import Simulator
from smsdash.worker.queue import get_queue
from smsdash.worker.runner import run_worker

WINDOW = QuietHours.parse("21:00-08:00")
NEW_YORK, HONOLULU = "+12125550101", "+18085550101"
SOUTH_DAKOTA = "+16055550101"  # America/Denver and America/North_Dakota/Center
UK_EXAMPLE = "+447700900123"  # Ofcom's drama range: no zone known


def utc(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "at", "until"),
    [
        (NEW_YORK, utc(1, 59), None),  # 20:59 EST: still open
        (NEW_YORK, utc(2, 0), utc(13, 0)),  # 21:00 EST: closed until 08:00 EST
        (NEW_YORK, utc(12, 59), utc(13, 0)),  # 07:59 EST
        (NEW_YORK, utc(13, 0), None),  # 08:00 EST: open
        (HONOLULU, utc(6, 59), None),  # 20:59 HST
        (HONOLULU, utc(7, 0), utc(18, 0)),  # 21:00 HST: until 08:00 HST
        (HONOLULU, utc(13, 0), utc(18, 0)),  # 03:00 HST (open in New York)
        (HONOLULU, utc(17, 59), utc(18, 0)),
        (HONOLULU, utc(18, 0), None),
    ],
)
def test_quiet_hours_in_the_recipients_own_zone(number: str, at: datetime, until: datetime | None) -> None:
    hold = hold_for(number, at, WINDOW, "UTC")
    assert (hold.until if hold else None) == until


def test_a_number_in_several_zones_waits_for_the_latest_opening() -> None:
    # 14:30 UTC: 07:30 in Denver (closed until 15:00 UTC), 08:30 in North Dakota's Central (open).
    assert hold_for(SOUTH_DAKOTA, utc(14, 30), WINDOW, "UTC") == Hold(
        datetime(2026, 12, 2, 8, 0, tzinfo=ZoneInfo("America/Denver")), "America/Denver"
    )
    # 13:30 UTC: both closed (06:30 and 07:30); the later opening is Denver's.
    assert hold_for(SOUTH_DAKOTA, utc(13, 30), WINDOW, "UTC").zone == "America/Denver"  # type: ignore[union-attr]


def test_a_number_with_no_known_zone_is_read_in_default_timezone() -> None:
    assert hold_for(UK_EXAMPLE, utc(0, 0), WINDOW, "Europe/London") is not None  # midnight in London
    assert hold_for(UK_EXAMPLE, utc(0, 0), WINDOW, "Asia/Tokyo") is None  # 09:00 in Tokyo
    assert hold_for(UK_EXAMPLE, utc(12, 0), WINDOW, "Europe/London") is None


def test_parse() -> None:
    assert QuietHours.parse("") is None and QuietHours.parse(None) is None
    assert str(QuietHours.parse(" 21:00 - 08:00 ")) == "21:00-08:00"
    with pytest.raises(ValueError, match="21:00-08:00"):
        QuietHours.parse("9pm-8am")


def _statuses(app: Flask) -> dict[str, tuple[str, datetime | None]]:
    with app.app_context():
        return {d.to_number: (d.status, d.send_after) for d in db.session.scalars(select(Delivery))}


def test_held_deliveries_wait_outside_redis_and_go_when_the_window_opens(
    twilio_app: Flask, simulator: Simulator
) -> None:
    twilio_app.config["QUIET_HOURS"] = "21:00-08:00"
    with time_machine.travel(utc(13, 30), tick=False), twilio_app.app_context():  # 08:30 EST, 03:30 HST
        message_id = compose_message("Site closed today", [Recipient(NEW_YORK), Recipient(HONOLULU)], author_id=None).id
        assert _statuses(twilio_app) == {NEW_YORK: ("queued", None), HONOLULU: ("scheduled", utc(18, 0))}
        held = db.session.scalars(select(Delivery).where(Delivery.to_number == HONOLULU)).one()
        assert held.enqueued_at is None and get_queue().count == 1  # one job: New York's; the rate is not spent
        assert waiting_note(db.session.get(Message, message_id)) == (
            "1 waits for quiet hours: 08:00 Pacific/Honolulu, in 4 h 30 min"
        )
        detail = db.session.scalar(select(Event.detail).where(Event.delivery_id == held.id))
        assert (
            detail
            == "held for quiet hours (21:00-08:00 in Pacific/Honolulu): to be sent 2026-12-02 08:00 Pacific/Honolulu (18:00 UTC)"
        )
        run_worker(twilio_app, burst=True)
        assert [m.to for m in simulator.messages] == [NEW_YORK]
    with time_machine.travel(utc(18, 0, 30)), twilio_app.app_context():
        assert release_due() == 1
        run_worker(twilio_app, burst=True)
        assert waiting_note(db.session.get(Message, message_id)) is None
    assert [m.to for m in simulator.messages] == [NEW_YORK, HONOLULU]


def test_a_scheduled_send_is_held_where_its_time_is_night(app: Flask) -> None:
    app.config["QUIET_HOURS"] = "21:00-08:00"
    with time_machine.travel(utc(7, 30), tick=False), app.app_context():
        later = Later(utc(12, 0, day=3), "America/Chicago")  # 06:00 in Chicago: 07:00 New York, 02:00 Honolulu
        compose_message("Shift at 7", [Recipient(NEW_YORK), Recipient(HONOLULU)], author_id=None, later=later)
    assert _statuses(app) == {
        NEW_YORK: ("scheduled", utc(13, 0, day=3)),
        HONOLULU: ("scheduled", utc(18, 0, day=3)),
    }


def test_ignore_quiet_hours_sends_at_once(app: Flask) -> None:
    app.config["QUIET_HOURS"] = "21:00-08:00"
    with time_machine.travel(utc(13, 30), tick=False), app.app_context():
        compose_message("Gas leak: stay out", [Recipient(HONOLULU)], author_id=None, ignore_quiet_hours=True)
    assert _statuses(app) == {HONOLULU: ("queued", None)}


def test_quiet_hours_off_when_unset(app: Flask) -> None:
    app.config["QUIET_HOURS"] = None
    with time_machine.travel(utc(13, 30), tick=False), app.app_context():
        compose_message("Hi", [Recipient(HONOLULU)], author_id=None)
    assert _statuses(app) == {HONOLULU: ("queued", None)}
