"""Approval of a large send: compose holds a send to APPROVAL_THRESHOLD recipients or more, and
only another operator who may send releases or rejects it; one decision wins a race. Real
database, real Redis and RQ, Twilio by the simulator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from smsdash.compose.approval import REASON_MAX_LENGTH, ApprovalRefused, OwnMessage, approve, reject
from smsdash.compose.service import Recipient, compose_message
from smsdash.config import ConfigError, load_config
from smsdash.extensions import db
from smsdash.models import AuditEntry, Delivery, Event, Message, OptOut, User
from smsdash.simulator import Simulator
from smsdash.worker.queue import get_queue
from smsdash.worker.runner import run_worker
from tests.conftest import add_operator_row
from tests.races import first_holds_until_another_waits, run_at_once

NUMBERS = ["+14155550101", "+14155550102", "+14155550103"]


@pytest.fixture
def threshold(app: Flask) -> int:
    app.config["APPROVAL_THRESHOLD"] = len(NUMBERS)
    return len(NUMBERS)


def compose(app: Flask, author: User | None, numbers: list[str] = NUMBERS) -> int:
    with app.app_context():
        return compose_message("Shift at 7", [Recipient(n) for n in numbers], author.id if author else None).id


def approval_of(app: Flask, message_id: int) -> str | None:
    with app.app_context():
        return db.session.scalar(select(Message.approval).where(Message.id == message_id))


def statuses(app: Flask, message_id: int) -> Counter[str]:
    with app.app_context():
        return Counter(db.session.scalars(select(Delivery.status).where(Delivery.message_id == message_id)))


def as_user(user: User) -> User:
    """The operator in the current session (approve and reject read and audit it)."""
    found = db.session.get(User, user.id)
    assert found is not None
    return found


def details(app: Flask, event_type: str) -> list[str | None]:
    with app.app_context():
        return list(db.session.scalars(select(Event.detail).where(Event.event_type == event_type).order_by(Event.id)))


def audit(app: Flask) -> list[tuple[str, str, dict[str, Any]]]:
    with app.app_context():
        return [
            (e.action, e.actor_label, e.details) for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def test_the_threshold_setting(tmp_path: Path) -> None:
    assert load_config(str(tmp_path), env={})["APPROVAL_THRESHOLD"] is None
    assert load_config(str(tmp_path), env={"APPROVAL_THRESHOLD": ""})["APPROVAL_THRESHOLD"] is None
    assert load_config(str(tmp_path), env={"APPROVAL_THRESHOLD": "0"})["APPROVAL_THRESHOLD"] is None
    assert load_config(str(tmp_path), env={"APPROVAL_THRESHOLD": "250"})["APPROVAL_THRESHOLD"] == 250
    with pytest.raises(ConfigError, match="APPROVAL_THRESHOLD must be a whole number, got 'lots'"):
        load_config(str(tmp_path), env={"APPROVAL_THRESHOLD": "lots"})
    with pytest.raises(ConfigError, match="APPROVAL_THRESHOLD must be a whole number of recipients"):
        load_config(str(tmp_path), env={"APPROVAL_THRESHOLD": "-5"})


def test_below_the_threshold_a_send_goes_at_once_and_is_audited(app: Flask, threshold: int, operator: User) -> None:
    message_id = compose(app, operator, NUMBERS[:2])
    assert approval_of(app, message_id) is None
    assert statuses(app, message_id) == Counter({"queued": 2})
    with app.app_context():
        assert get_queue().count == 1  # one batch job
    ((action, _, info),) = audit(app)
    assert action == "message.compose"
    assert info == {"recipients": 2, "awaiting_approval": False, "template_id": None}


def test_without_a_threshold_a_large_send_is_not_held(app: Flask, operator: User) -> None:
    message_id = compose(app, operator)
    assert approval_of(app, message_id) is None and statuses(app, message_id) == Counter({"queued": 3})


def test_at_the_threshold_it_waits_and_nothing_is_enqueued(app: Flask, threshold: int, operator: User) -> None:
    message_id = compose(app, operator)
    assert approval_of(app, message_id) == "awaiting"
    assert statuses(app, message_id) == Counter({"scheduled": 3})
    with app.app_context():
        assert get_queue().count == 0
        assert all(d.send_after is not None for d in db.session.scalars(select(Delivery)))
    assert (
        details(app, "scheduled")
        == ["awaiting approval: it goes out only after another operator approves the message"] * 3
    )
    (entry,) = audit(app)
    assert entry[0] == "message.compose" and entry[2] == {
        "recipients": 3,
        "awaiting_approval": True,
        "template_id": None,
    }


def test_opted_out_numbers_do_not_count_towards_the_threshold(app: Flask, threshold: int, operator: User) -> None:
    with app.app_context():
        db.session.add(OptOut(phone=NUMBERS[0], sender="", source="stop"))
        db.session.commit()
    message_id = compose(app, operator)
    assert approval_of(app, message_id) is None
    assert statuses(app, message_id) == Counter({"queued": 2, "canceled": 1})


def test_another_sender_approves_it_and_it_is_sent(
    twilio_app: Flask, simulator: Simulator, threshold: int, operator: User
) -> None:
    twilio_app.config["APPROVAL_THRESHOLD"] = threshold
    sender = add_operator_row(twilio_app, "second@example.com", "sender")
    message_id = compose(twilio_app, operator)
    with twilio_app.app_context():
        assert approve(message_id, as_user(sender)) == 3
        assert get_queue().count == 1
        approved = db.session.get(Message, message_id)
        assert approved is not None
        assert (approved.approval, approved.reviewed_by_id) == ("approved", sender.id)
        assert approved.reviewed_at is not None
    assert details(twilio_app, "queued") == ["released: approved by second@example.com"] * 3
    run_worker(twilio_app, burst=True)
    assert statuses(twilio_app, message_id) == Counter({"sent": 3})
    assert Counter(m.to for m in simulator.messages) == Counter(NUMBERS)
    action, actor, info = audit(twilio_app)[-1]
    assert (action, actor.split(" ")[0], info) == (
        "message.approve",
        "second@example.com",
        {"released": 3, "waiting": 0},
    )


def test_the_author_cannot_approve_or_reject_their_own(app: Flask, threshold: int, operator: User) -> None:
    message_id = compose(app, operator)
    with app.app_context():
        with pytest.raises(OwnMessage, match="You composed this message, so another operator must approve"):
            approve(message_id, as_user(operator))
        with pytest.raises(OwnMessage):
            reject(message_id, as_user(operator), "changed my mind")
    assert statuses(app, message_id) == Counter({"scheduled": 3})
    assert [a for a, *_ in audit(app)] == ["message.compose"]


def test_a_viewer_cannot_approve(app: Flask, threshold: int, operator: User) -> None:
    viewer = add_operator_row(app, "viewer@example.com", "viewer")
    message_id = compose(app, operator)
    with app.app_context(), pytest.raises(ApprovalRefused, match="Your role lets you read this dashboard"):
        approve(message_id, as_user(viewer))
    assert statuses(app, message_id) == Counter({"scheduled": 3})


def test_a_message_from_the_command_line_is_approved_by_any_sender(app: Flask, threshold: int) -> None:
    admin = add_operator_row(app, "admin@example.com", "admin")
    message_id = compose(app, None)
    with app.app_context():
        assert approve(message_id, as_user(admin)) == 3


def test_approving_twice_releases_once(app: Flask, threshold: int, operator: User) -> None:
    first, second = add_operator_row(app, "a@example.com", "sender"), add_operator_row(app, "b@example.com", "sender")
    message_id = compose(app, operator)
    with app.app_context():
        assert approve(message_id, as_user(first)) == 3
        with pytest.raises(ApprovalRefused, match="already approved, by a@example.com"):
            approve(message_id, as_user(second))
        with pytest.raises(ApprovalRefused, match="already approved"):
            reject(message_id, as_user(second), "too late")
    assert len(details(app, "queued")) == 3


def test_a_message_not_held_cannot_be_approved(app: Flask, operator: User) -> None:
    sender = add_operator_row(app, "second@example.com", "sender")
    message_id = compose(app, operator)
    with app.app_context(), pytest.raises(ApprovalRefused, match="did not need approval"):
        approve(message_id, as_user(sender))


def test_reject_needs_a_reason_then_cancels_every_delivery(app: Flask, threshold: int, operator: User) -> None:
    sender = add_operator_row(app, "second@example.com", "sender")
    message_id = compose(app, operator)
    with app.app_context():
        for blank in ("", "   \n"):
            with pytest.raises(ApprovalRefused, match="Give a reason"):
                reject(message_id, as_user(sender), blank)
        with pytest.raises(ApprovalRefused, match=f"Keep the reason to {REASON_MAX_LENGTH} characters"):
            reject(message_id, as_user(sender), "x" * (REASON_MAX_LENGTH + 1))
        assert db.session.get(Message, message_id).approval == "awaiting"  # type: ignore[union-attr]
        assert reject(message_id, as_user(sender), "  Wrong list: this is the whole county  ") == 3
        rejected = db.session.get(Message, message_id)
        assert rejected is not None
        assert (rejected.approval, rejected.review_reason) == ("rejected", "Wrong list: this is the whole county")
        with pytest.raises(ApprovalRefused, match="already rejected, by second@example.com"):
            approve(message_id, as_user(sender))
    assert statuses(app, message_id) == Counter({"canceled": 3})
    assert (
        details(app, "canceled")
        == ["not sent: rejected by second@example.com: Wrong list: this is the whole county"] * 3
    )
    action, _, info = audit(app)[-1]
    assert (action, info) == ("message.reject", {"reason": "Wrong list: this is the whole county", "canceled": 3})


def test_a_held_message_canceled_by_its_author_cannot_be_approved(app: Flask, threshold: int, operator: User) -> None:
    from smsdash.schedules.manage import cancel

    sender = add_operator_row(app, "second@example.com", "sender")
    message_id = compose(app, operator)
    with app.app_context():
        cancel(message_id, as_user(operator))
        with pytest.raises(ApprovalRefused, match="Nothing of message #.* is waiting any more: it was canceled"):
            approve(message_id, as_user(sender))
        assert db.session.get(Message, message_id).approval == "awaiting"  # type: ignore[union-attr]
    assert statuses(app, message_id) == Counter({"canceled": 3})


def test_sms_send_says_it_awaits_approval(app: Flask, runner: Any, threshold: int) -> None:
    args = ["sms", "send", "--body", "Shift at 7"] + [a for n in NUMBERS for a in ("--to", n)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert (
        "Awaiting approval: message #1 goes to 3 recipients, so nothing is sent until another operator" in result.stderr
    )
    assert result.stdout.strip() == "1"
    assert statuses(app, 1) == Counter({"scheduled": 3})


def test_two_approvers_at_once_release_once(app: Flask, threshold: int, operator: User, on_postgres: None) -> None:
    """The first approval holds its message row lock until the second is seen waiting on it in
    pg_stat_activity: the two really overlap, and the second then finds it no longer awaiting."""
    first, second = add_operator_row(app, "a@example.com", "sender"), add_operator_row(app, "b@example.com", "sender")
    message_id = compose(app, operator, [f"+1415555{i:04d}" for i in range(40)])
    with app.app_context():
        engine = db.engine
    outcomes: list[str] = []

    def run(user: User) -> None:
        try:
            outcomes.append(f"released {approve(message_id, as_user(user))}")
        except ApprovalRefused as refused:
            outcomes.append(str(refused))

    # Any backend of this database waiting on a lock is the other approval waiting on this one.
    with first_holds_until_another_waits(engine, "UPDATE comms_messages SET approval", what="the second approval"):
        run_at_once(app, [lambda user=user: run(user) for user in (first, second)], timeout=30)
    assert sorted(o.split(",")[0] for o in outcomes) == [f"Message #{message_id} was already approved", "released 40"]
    assert statuses(app, message_id) == Counter({"queued": 40})
    assert len(details(app, "queued")) == 40
    assert [a for a, *_ in audit(app)].count("message.approve") == 1
