"""The pending inbox: callbacks for an unknown SID wait, and are applied once the SID is stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, text, update

from smsdash.delivery.pending import (
    KEEP_APPLIED,
    KEEP_UNMATCHED,
    apply_pending,
    expired,
    keep_pending,
    unmatched,
    waiting_with_sid_known,
)
from smsdash.extensions import db
from smsdash.models import Delivery, PendingCallback, utcnow
from smsdash.worker.runner import run_worker
from tests.fixtures_webhooks import callback_params, delivery_row, events_of

SID = "SM" + "a" * 32


def test_nothing_waiting_applies_nothing(app: Flask, make_delivery: Callable[..., int]) -> None:
    delivery_id = make_delivery(status="sent", sid=SID)
    with app.app_context():
        assert apply_pending(delivery_id, SID) == 0
    assert delivery_row(app, delivery_id).status == "sent"


def test_waiting_callbacks_are_applied_once_in_rank_order(app: Flask, make_delivery: Callable[..., int]) -> None:
    delivery_id = make_delivery(status="queued")
    with app.app_context():
        keep_pending(SID, "delivered", callback_params(SID, "delivered", RawDlrDoneDate="2611262315"))
        keep_pending(SID, "sent", callback_params(SID, "sent"))
        keep_pending("SM" + "b" * 32, "failed", callback_params("SM" + "b" * 32, "failed"))
        db.session.commit()
        assert apply_pending(delivery_id, SID) == 2
        db.session.commit()
        assert apply_pending(delivery_id, SID) == 0
    delivery = delivery_row(app, delivery_id)
    assert delivery.status == "delivered"
    assert delivery.external_message_id == SID
    assert delivery.delivered_at is not None and delivery.delivered_at.strftime("%y%m%d%H%M") == "2611262315"
    assert sorted(e.event_type for e in events_of(app, delivery_id)) == ["delivered", "sent"]


def test_old_unmatched_entries_are_listed_for_operators(app: Flask) -> None:
    with app.app_context():
        keep_pending(SID, "sent", callback_params(SID, "sent"))
        db.session.commit()
        assert unmatched(timedelta(minutes=5)) == []
        assert [p.message_sid for p in unmatched(timedelta(0))] == [SID]


def test_the_worker_applies_callbacks_left_waiting_for_a_sid_that_is_stored(
    app: Flask, make_delivery: Callable[..., int]
) -> None:
    # What a send job that died between committing the SID and applying the inbox leaves behind:
    # the SID is stored, its callback waits, and no later callback will come to bring it back.
    delivery_id = make_delivery(status="sent", sid=SID)
    with app.app_context():
        keep_pending(SID, "delivered", callback_params(SID, "delivered"))
        db.session.commit()
        run_worker(app, burst=True)
    assert delivery_row(app, delivery_id).status == "delivered"
    assert [e.event_type for e in events_of(app, delivery_id)] == ["delivered"]


def test_the_worker_drops_applied_and_long_unmatched_entries(app: Flask, make_delivery: Callable[..., int]) -> None:
    # Callbacks for messages another app sends through the same account or service are parked
    # forever otherwise: the inbox would grow with every one of them.
    other = "SM" + "c" * 32
    delivery_id = make_delivery(status="queued")
    with app.app_context():
        for sid, status in ((SID, "sent"), ("SM" + "b" * 32, "sent"), (other, "sent"), (other, "delivered")):
            keep_pending(sid, status, callback_params(sid, status))
        db.session.commit()
        db.session.execute(
            update(PendingCallback)
            .where(PendingCallback.message_sid == other)
            .values(received_at=utcnow() - KEEP_UNMATCHED - timedelta(minutes=1))
        )
        db.session.execute(update(Delivery).where(Delivery.id == delivery_id).values(external_message_id=SID))
        assert apply_pending(delivery_id, SID) == 1
        db.session.execute(
            update(PendingCallback)
            .where(PendingCallback.message_sid == SID)
            .values(applied_at=utcnow() - KEEP_APPLIED - timedelta(minutes=1))
        )
        db.session.commit()
        run_worker(app, burst=True)
        left = db.session.scalars(select(PendingCallback.message_sid)).all()
    assert left == ["SM" + "b" * 32]


def _plan(statement: Any) -> str:
    """The database's plan for `statement`, as one lowercase text (SQLite or PostgreSQL)."""
    dialect = db.engine.dialect.name
    sql = str(statement.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
    if dialect == "sqlite":
        rows = db.session.execute(text(f"EXPLAIN QUERY PLAN {sql}")).all()
        return "\n".join(str(row[-1]) for row in rows).lower()
    db.session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny test table: ask for the best index
    return "\n".join(row[0] for row in db.session.execute(text(f"EXPLAIN {sql}")).all()).lower()


def test_the_sweep_and_the_retention_delete_read_the_inbox_through_indexes(app: Flask) -> None:
    """The worker runs both every 30 s; before the indexes each scanned the whole inbox."""
    with app.app_context():
        sweep_plan = _plan(waiting_with_sid_known())
        delete_plan = _plan(expired(utcnow()))
        db.session.rollback()
    for plan in (sweep_plan, delete_plan):
        assert "ix_twilio_pending_callbacks_" in plan  # one of the inbox's indexes
        assert "scan twilio_pending_callbacks" not in plan.replace("index scan", "")  # SQLite's full scan
        assert "seq scan on twilio_pending_callbacks" not in plan  # PostgreSQL's
