"""The pending inbox: callbacks for an unknown SID wait, and are applied once the SID is stored."""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

from flask import Flask

from smsdash.extensions import db
from smsdash.pending import apply_pending, keep_pending, unmatched
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
