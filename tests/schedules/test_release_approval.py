"""The release and approval: a held message is never released while it awaits approval (or was
rejected), however due; approved before its time it goes at its time; not approved by then it
does not go at all, and each of its deliveries says why. Real RQ and Redis, the simulator, time
by time-machine."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select, update

from smsdash.compose.approval import ApprovalRefused, approve, reject
from smsdash.compose.service import Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import Event, Message, User, utcnow
from smsdash.schedules.release import EXPIRED_NOTE, expire_unapproved, release_due
from smsdash.schedules.when import Later
from smsdash.simulator import Simulator
from smsdash.worker.runner import run_worker
from tests.compose.test_approval import NUMBERS, approval_of, as_user, compose, statuses
from tests.conftest import add_operator_row


@pytest.fixture
def approver(app: Flask) -> User:
    app.config["APPROVAL_THRESHOLD"] = len(NUMBERS)
    return add_operator_row(app, "second@example.com", "sender")


def _at(minutes: float) -> time_machine.travel:
    return time_machine.travel(time.time() + minutes * 60)


def _schedule(app: Flask, author: User, minutes: float) -> int:
    with app.app_context():
        later = Later(utcnow() + timedelta(minutes=minutes), "UTC")
        return compose_message("Shift at 7", [Recipient(n) for n in NUMBERS], author.id, later=later).id


def _release(app: Flask) -> int:
    with app.app_context():
        return release_due()


def test_a_send_now_awaiting_approval_is_never_released_and_never_expires(
    app: Flask, approver: User, operator: User
) -> None:
    message_id = compose(app, operator)
    with _at(60 * 24 * 3):
        assert _release(app) == 0
    assert statuses(app, message_id) == Counter({"scheduled": 3}) and approval_of(app, message_id) == "awaiting"


def test_a_rejected_message_is_never_released(app: Flask, approver: User, operator: User) -> None:
    """Rejecting cancels its deliveries; a delivery left `scheduled` by any other path (a bug, a
    hand edit) is still held by the release's own test."""
    message_id = _schedule(app, operator, 10)
    with app.app_context():
        db.session.execute(update(Message).where(Message.id == message_id).values(approval="rejected"))
        db.session.commit()
    with _at(11):
        assert _release(app) == 0
    assert statuses(app, message_id) == Counter({"scheduled": 3})


def test_approved_before_its_time_it_goes_at_its_time(
    twilio_app: Flask, simulator: Simulator, approver: User, operator: User
) -> None:
    twilio_app.config["APPROVAL_THRESHOLD"] = len(NUMBERS)
    message_id = _schedule(twilio_app, operator, 30)
    with _at(5), twilio_app.app_context():
        assert approve(message_id, as_user(approver)) == 0  # nothing due yet
    with _at(29):
        assert _release(twilio_app) == 0
    assert statuses(twilio_app, message_id) == Counter({"scheduled": 3})
    with _at(30.5):
        assert _release(twilio_app) == 3
        run_worker(twilio_app, burst=True)
    assert statuses(twilio_app, message_id) == Counter({"sent": 3})
    assert Counter(m.to for m in simulator.messages) == Counter(NUMBERS)
    with twilio_app.app_context():
        notes = db.session.scalars(select(Event.detail).where(Event.event_type == "scheduled").order_by(Event.id)).all()
    assert notes.count("approved by second@example.com: waits for its time") == 3


def test_not_approved_by_its_time_it_does_not_go(
    twilio_app: Flask, simulator: Simulator, approver: User, operator: User
) -> None:
    twilio_app.config["APPROVAL_THRESHOLD"] = len(NUMBERS)
    message_id = _schedule(twilio_app, operator, 30)
    with _at(29):
        assert _release(twilio_app) == 0
        assert approval_of(twilio_app, message_id) == "awaiting"
    with _at(30.5), twilio_app.app_context():
        with pytest.raises(ApprovalRefused, match="was not approved before its scheduled time, so it will not be sent"):
            approve(message_id, as_user(approver))
        assert release_due() == 0
        assert expire_unapproved() == 0  # once
        run_worker(twilio_app, burst=True)
        with pytest.raises(ApprovalRefused, match="was not approved before its scheduled time"):
            reject(message_id, as_user(approver), "too late anyway")
        canceled = db.session.scalars(select(Event.detail).where(Event.event_type == "canceled")).all()
    assert approval_of(twilio_app, message_id) == "expired"
    assert statuses(twilio_app, message_id) == Counter({"canceled": 3}) and simulator.messages == []
    assert canceled == [EXPIRED_NOTE] * 3


def test_an_ordinary_scheduled_message_is_released_beside_a_held_one(app: Flask, operator: User) -> None:
    held = add_operator_row(app, "second@example.com", "sender")
    plain_id = _schedule(app, operator, 10)
    app.config["APPROVAL_THRESHOLD"] = len(NUMBERS)
    held_id = compose(app, held)
    with _at(11):
        assert _release(app) == 3
    assert statuses(app, plain_id) == Counter({"queued": 3})
    assert statuses(app, held_id) == Counter({"scheduled": 3})


def test_a_text_changed_after_approval_needs_approval_again(app: Flask, approver: User, operator: User) -> None:
    from smsdash.compose.service import rewrite_scheduled

    message_id = _schedule(app, operator, 30)
    with app.app_context():
        approve(message_id, as_user(approver))
        assert rewrite_scheduled(message_id, "Shift at 8, bring ID", as_user(operator)) == 3
        message = db.session.get(Message, message_id)
        assert message is not None and (message.approval, message.reviewed_by_id) == ("awaiting", None)
    with _at(30.5):
        assert _release(app) == 0
    assert statuses(app, message_id) == Counter({"canceled": 3}) and approval_of(app, message_id) == "expired"
