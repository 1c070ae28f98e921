"""The release: due `scheduled` deliveries become `queued` by one conditional UPDATE and go out
through the normal enqueue path; once each, even with two releases at once, after Redis was
flushed, or when no worker ran at the due time. Real RQ on a real Redis; time by time-machine."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import time_machine
from flask import Flask
from sqlalchemy import select

from smsdash.compose.service import Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import Delivery, Event, utcnow
from smsdash.redis_conn import get_redis
from smsdash.schedules.release import release_due
from smsdash.schedules.when import Later
from smsdash.sending.queue import sweep_unenqueued
from smsdash.simulator import Simulator
from smsdash.worker.queue import get_queue
from smsdash.worker.runner import run_worker
from tests.races import first_holds_until_another_waits, run_at_once

NUMBERS = [f"+1415555010{i}" for i in range(1, 6)]


def _schedule(app: Flask, minutes: float, numbers: list[str] = NUMBERS) -> int:
    with app.app_context():
        later = Later(utcnow() + timedelta(minutes=minutes), "UTC")
        return compose_message("Shift at 7", [Recipient(n) for n in numbers], author_id=None, later=later).id


def _statuses(app: Flask, message_id: int) -> Counter[str]:
    with app.app_context():
        return Counter(db.session.scalars(select(Delivery.status).where(Delivery.message_id == message_id)))


def _release_details(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Event.detail).where(Event.event_type == "queued").order_by(Event.id)))


def _at(minutes: float) -> time_machine.travel:
    return time_machine.travel(time.time() + minutes * 60)


def _release(app: Flask) -> int:
    with app.app_context():
        return release_due()


def test_nothing_is_released_before_its_time_then_it_is_sent_once(twilio_app: Flask, simulator: Simulator) -> None:
    message_id = _schedule(twilio_app, 10)
    with _at(9):
        assert _release(twilio_app) == 0
        run_worker(twilio_app, burst=True)
    assert _statuses(twilio_app, message_id) == Counter({"scheduled": len(NUMBERS)}) and simulator.messages == []

    with _at(10.1):
        assert _release(twilio_app) == len(NUMBERS)
        assert _release(twilio_app) == 0
        run_worker(twilio_app, burst=True)
    assert _statuses(twilio_app, message_id) == Counter({"sent": len(NUMBERS)})
    assert Counter(m.to for m in simulator.messages) == Counter(NUMBERS)
    assert _release_details(twilio_app) == ["released: its scheduled time came"] * len(NUMBERS)


def test_released_while_redis_is_flushed_it_is_still_sent_once(twilio_app: Flask, simulator: Simulator) -> None:
    message_id = _schedule(twilio_app, 10)
    get_redis(twilio_app).flushdb()  # before release: Redis held nothing for it anyway
    with _at(10.1):
        assert _release(twilio_app) == len(NUMBERS)
    get_redis(twilio_app).flushdb()  # after release: its jobs are gone
    with _at(11), twilio_app.app_context():
        assert get_queue().count == 0
        assert sweep_unenqueued() == len(NUMBERS)  # the database still says queued
        run_worker(twilio_app, burst=True)
    assert _statuses(twilio_app, message_id) == Counter({"sent": len(NUMBERS)})
    assert Counter(m.to for m in simulator.messages) == Counter(NUMBERS)


def test_no_worker_at_the_due_time_sends_it_late_and_says_how_late(twilio_app: Flask, simulator: Simulator) -> None:
    message_id = _schedule(twilio_app, 10)
    with _at(10 + 2 * 60 + 5):  # every worker down for two hours over the due time
        assert _release(twilio_app) == len(NUMBERS)
        run_worker(twilio_app, burst=True)
    assert _statuses(twilio_app, message_id) == Counter({"sent": len(NUMBERS)})
    details = _release_details(twilio_app)
    assert len(details) == len(NUMBERS)
    assert all(d.startswith("released 2 h 5 min late: no worker was running at its scheduled time") for d in details)


def test_two_releases_at_once_claim_each_delivery_once(app: Flask, on_postgres: None) -> None:
    """The first release holds its UPDATE's row locks until the second is seen waiting on them
    in pg_stat_activity: the two really overlap, and the second then finds nothing scheduled."""
    message_id = _schedule(app, 1, [f"+1415555{i:04d}" for i in range(40)])
    with app.app_context():
        engine = db.engine
    results: list[int] = []
    with (
        first_holds_until_another_waits(
            engine,
            "UPDATE comms_deliveries SET status",
            waiting_query_like="UPDATE comms_deliveries%",
            what="the second release",
        ),
        _at(2),
    ):
        run_at_once(app, [lambda: results.append(release_due())] * 2)
    assert sorted(results) == [0, 40]
    assert _statuses(app, message_id) == Counter({"queued": 40})
    with app.app_context():
        released = Counter(db.session.scalars(select(Event.delivery_id).where(Event.event_type == "queued")))
    assert len(released) == 40 and set(released.values()) == {1}
