"""Before release an operator can change a scheduled message's time or text, or cancel it; once
it has gone out each of those is refused and changes nothing. `sms scheduled` and `sms cancel`."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from smsdash.compose.service import ComposeRefused, Recipient, compose_message, rewrite_scheduled
from smsdash.extensions import db
from smsdash.models import Contact, Delivery, Event, Message, User, utcnow
from smsdash.schedules.manage import NotScheduled, cancel, reschedule
from smsdash.schedules.release import release_due
from smsdash.schedules.when import Later
from smsdash.simulator import Simulator
from smsdash.worker.runner import run_worker

ADA, TYPED = "+14155550101", "+14155550109"


def _schedule(app: Flask, minutes: float = 10, body: str = "Shift at 7") -> int:
    with app.app_context():
        db.session.add(Contact(name="Ada Lovelace", phone=ADA))
        db.session.commit()
        later = Later(utcnow() + timedelta(minutes=minutes), "America/Chicago")
        return compose_message(body, [Recipient(ADA), Recipient(TYPED)], author_id=None, later=later).id


def _deliveries(app: Flask) -> list[tuple[str, str, str]]:
    with app.app_context():
        return [(d.to_number, d.status, d.body) for d in db.session.scalars(select(Delivery).order_by(Delivery.id))]


def _details(app: Flask, event_type: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Event.detail).where(Event.event_type == event_type).order_by(Event.id)))


def _at(minutes: float) -> time_machine.travel:
    return time_machine.travel(time.time() + minutes * 60)


def _release_and_send(app: Flask) -> int:
    with app.app_context():
        released = release_due()
    run_worker(app, burst=True)
    return released


def test_cancel_before_release_sends_nothing_and_says_who(
    twilio_app: Flask, simulator: Simulator, operator: User
) -> None:
    message_id = _schedule(twilio_app)
    with twilio_app.app_context():
        assert cancel(message_id, db.session.get(User, operator.id)) == 2
    assert [s for _, s, _ in _deliveries(twilio_app)] == ["canceled", "canceled"]
    assert _details(twilio_app, "canceled") == ["canceled before it was sent, by op@example.com"] * 2
    with _at(11):
        assert _release_and_send(twilio_app) == 0
    assert simulator.messages == []


def test_cancel_edit_and_reschedule_after_release_are_refused(twilio_app: Flask, simulator: Simulator) -> None:
    message_id = _schedule(twilio_app)
    with _at(11):
        assert _release_and_send(twilio_app) == 2
        with twilio_app.app_context():
            for change in (
                lambda: cancel(message_id, None),
                lambda: reschedule(message_id, Later(utcnow() + timedelta(hours=1), "UTC"), None),
                lambda: rewrite_scheduled(message_id, "Changed", None),
            ):
                with pytest.raises(NotScheduled, match="nothing waiting"):
                    change()
    assert _deliveries(twilio_app) == [(ADA, "sent", "Shift at 7"), (TYPED, "sent", "Shift at 7")]
    assert len(simulator.messages) == 2


def test_reschedule_moves_the_release(twilio_app: Flask, simulator: Simulator) -> None:
    message_id = _schedule(twilio_app)
    with twilio_app.app_context():
        later = Later(utcnow() + timedelta(minutes=60), "America/Chicago")
        assert reschedule(message_id, later, None) == 2
        assert db.session.get(Message, message_id).send_at == later.at
    assert _details(twilio_app, "scheduled")[-1].startswith("time changed by the command line: now to be sent ")
    with _at(11):
        assert _release_and_send(twilio_app) == 0
    with _at(61):
        assert _release_and_send(twilio_app) == 2
    assert len(simulator.messages) == 2


def test_rewrite_renders_each_waiting_text_again(app: Flask) -> None:
    message_id = _schedule(app)
    with app.app_context():
        assert rewrite_scheduled(message_id, "Hi {{first_name|there}}, shift at 8", None) == 2
        assert db.session.get(Message, message_id).body == "Hi {{first_name|there}}, shift at 8"
    assert _deliveries(app) == [
        (ADA, "scheduled", "Hi Ada, shift at 8"),
        (TYPED, "scheduled", "Hi there, shift at 8"),
    ]
    with app.app_context(), pytest.raises(ComposeRefused, match="site"):
        rewrite_scheduled(message_id, "At {{site}}", None)  # no fallback, and nobody has a site
    assert [b for _, _, b in _deliveries(app)] == ["Hi Ada, shift at 8", "Hi there, shift at 8"]  # unchanged


def test_sms_scheduled_lists_and_sms_cancel_cancels(app: Flask, runner: Any) -> None:
    message_id = _schedule(app)
    listed = runner.invoke(args=["sms", "scheduled"])
    assert listed.exit_code == 0
    assert f"message {message_id}  " in listed.output and "America/Chicago" in listed.output
    assert "2 recipient(s)  by the command line  'Shift at 7'" in listed.output

    assert runner.invoke(args=["sms", "cancel", str(message_id)]).output == (
        f"Canceled 2 scheduled deliveries of message {message_id}.\n"
    )
    again = runner.invoke(args=["sms", "cancel", str(message_id)])
    assert again.exit_code == 1 and "nothing waiting to be sent" in again.output
    assert runner.invoke(args=["sms", "scheduled"]).output == "0 message(s) waiting.\n"
    assert Counter(s for _, s, _ in _deliveries(app)) == Counter({"canceled": 2})
