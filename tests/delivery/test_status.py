"""The state machine: never backwards, never out of final (but read after delivered), timestamps kept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask import Flask

from smsdash.delivery.status import apply_status, may_move
from smsdash.extensions import db
from tests.fixtures_webhooks import delivery_row, events_of

T1 = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "current, new, allowed",
    [
        ("queued", "sent", True),
        ("sent", "sending", False),
        ("delivered", "sent", False),
        ("delivered", "read", True),
        ("failed", "delivered", False),
        ("undelivered", "read", False),
        ("sent", "sent", False),
        ("queued", "teleported", False),
    ],
)
def test_may_move(current: str, new: str, allowed: bool) -> None:
    assert may_move(current, new) is allowed


def test_outcome_reports_move_and_recorded_event(app: Flask, make_delivery: Callable[..., int]) -> None:
    delivery_id = make_delivery()
    with app.app_context():
        first = apply_status(delivery_id, "sent", source="twilio")
        again = apply_status(delivery_id, "sent", source="reconciler")
        db.session.commit()
    assert (first.moved, first.recorded) == (True, True)
    assert (again.moved, again.recorded) == (False, False)
    assert len(events_of(app, delivery_id)) == 1


def test_skipped_steps_fill_earlier_timestamps_without_overwriting(
    app: Flask, make_delivery: Callable[..., int]
) -> None:
    jumped, stepped = make_delivery(), make_delivery()
    with app.app_context():
        apply_status(jumped, "read", source="twilio", occurred_at=T1)
        apply_status(jumped, "sent", source="twilio", occurred_at=T2)
        apply_status(stepped, "delivered", source="twilio", occurred_at=T1)
        apply_status(stepped, "read", source="twilio", occurred_at=T2)
        db.session.commit()
    jumped_row, stepped_row = delivery_row(app, jumped), delivery_row(app, stepped)
    assert (jumped_row.status, jumped_row.sent_at, jumped_row.delivered_at) == ("read", T1, T1)
    assert (stepped_row.status, stepped_row.delivered_at, stepped_row.sent_at) == ("read", T1, T1)


def test_unknown_status_is_refused(app: Flask, make_delivery: Callable[..., int]) -> None:
    delivery_id = make_delivery()
    with app.app_context(), pytest.raises(ValueError):
        apply_status(delivery_id, "teleported", source="twilio")


def test_pending_orm_changes_are_flushed_before_the_move(app: Flask, make_delivery: Callable[..., int]) -> None:
    """A caller that changed the delivery through the ORM must not have that change written
    after (and over) the state machine's UPDATE."""
    from smsdash.models import Delivery

    delivery_id = make_delivery()
    with app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        assert delivery is not None
        delivery.status, delivery.attempts = "sending", 1  # e.g. a job claiming it
        apply_status(delivery_id, "sent", source="job")
        db.session.commit()
    row = delivery_row(app, delivery_id)
    assert (row.status, row.attempts) == ("sent", 1)


def test_only_a_final_status_set_before_twilio_answered_gives_way_to_twilio(
    app: Flask, make_delivery: Callable[..., int]
) -> None:
    guessed = make_delivery(status="failed")  # the job gave up on timeouts: Twilio never answered
    heard = make_delivery(status="failed", sid="SM" + "1" * 32)  # Twilio's own failure
    with app.app_context():
        replaced = apply_status(guessed, "delivered", source="twilio", sid="SM" + "2" * 32, occurred_at=T1)
        kept = apply_status(heard, "delivered", source="twilio", sid="SM" + "1" * 32, occurred_at=T1)
        db.session.commit()
    assert (replaced.moved, kept.moved) == (True, False)
    guessed_row, heard_row = delivery_row(app, guessed), delivery_row(app, heard)
    assert (guessed_row.status, guessed_row.external_message_id, guessed_row.delivered_at) == (
        "delivered",
        "SM" + "2" * 32,
        T1,
    )
    assert heard_row.status == "failed"


def test_a_guess_applies_only_while_twilio_has_said_nothing(app: Flask, make_delivery: Callable[..., int]) -> None:
    """A failure or cancel we decide ourselves (no SID, not a callback) never writes over Twilio's
    word: a stored SID, or a status Twilio reported (kept without its SID when another delivery
    holds it). The guess stays in the timeline, saying why it changed nothing."""
    unheard = make_delivery(status="sending")
    heard = make_delivery(status="sent", sid="SM" + "1" * 32)
    heard_without_sid = make_delivery(status="delivered")
    with app.app_context():
        outcomes = [
            apply_status(d, status, source=source, detail="gave up")
            for d in (unheard, heard, heard_without_sid)
            for status, source in [("failed", "job"), ("canceled", "job"), ("failed", "reconciler")]
        ]
        db.session.commit()
    assert [o.moved for o in outcomes] == [True, False, False] + [False] * 6
    assert [delivery_row(app, d).status for d in (unheard, heard, heard_without_sid)] == ["failed", "sent", "delivered"]
    refused = [e.detail for e in events_of(app, heard)]
    assert len(refused) == 3 and all("Twilio already reported this message (sent)" in d for d in refused)


def test_an_adopted_sid_another_delivery_holds_writes_nothing(app: Flask, make_delivery: Callable[..., int]) -> None:
    holder = make_delivery(status="sent", sid="SM" + "1" * 32)
    adopter = make_delivery(status="sending")
    with app.app_context():
        outcome = apply_status(adopter, "sent", source="job", sid="SM" + "1" * 32, adopted=True)
        db.session.commit()
    assert (outcome.moved, outcome.recorded, outcome.sid_stored, outcome.sid_held_by) == (False, False, False, holder)
    assert (delivery_row(app, adopter).status, events_of(app, adopter)) == ("sending", [])
