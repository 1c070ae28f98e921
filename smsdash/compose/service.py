"""Composing a message: one `comms_messages` row and a delivery per recipient, then the work.

Everything is committed before anything is enqueued, because the database is the source of
truth: if Redis is down, the message and its `queued` deliveries still exist, compose still
succeeds, and the worker's sweeper enqueues them later. Numbers that opted out of this sender
get a delivery too, `canceled` at once with an event saying why, so the operator sees who was
left out instead of a recipient silently missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert

from smsdash.delivery.optouts import opted_out_among
from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message, utcnow
from smsdash.sending.queue import enqueue_first_attempts
from smsdash.twilio.messages_api import sender_identity


@dataclass(frozen=True)
class Recipient:
    """One number to text (E.164, already normalised), and the contact it came from, if any."""

    to_number: str
    contact_id: int | None = None


def compose_message(body: str, recipients: Sequence[Recipient], author_id: int | None) -> Message:
    """Create a message and its deliveries, commit them, then enqueue the sends in batches.

    A number listed twice gets one delivery. Returns the committed message; whether its work
    reached Redis now or reaches it through the sweeper later, every delivery is sent once.
    """
    unique: dict[str, Recipient] = {}
    for recipient in recipients:
        unique.setdefault(recipient.to_number, recipient)
    opted_out = opted_out_among(unique, sender_identity())
    now = utcnow()
    message = Message(body=body, author_id=author_id, recipient_count=len(unique), created_at=now)
    db.session.add(message)
    db.session.flush()
    rows: list[dict[str, Any]] = [
        {
            "message_id": message.id,
            "contact_id": r.contact_id,
            "to_number": r.to_number,
            "status": "canceled" if r.to_number in opted_out else "queued",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for r in unique.values()
    ]
    inserted = (
        db.session.execute(
            insert(Delivery).returning(Delivery.id, Delivery.to_number, Delivery.status, sort_by_parameter_order=True),
            rows,
        ).all()
        if rows
        else []
    )
    canceled = [r for r in inserted if r.status == "canceled"]
    if canceled:
        db.session.execute(
            insert(Event),
            [
                {
                    "delivery_id": r.id,
                    "event_type": "canceled",
                    "source": "app",
                    "received_at": now,
                    "detail": f"not sent: {r.to_number} opted out (replied STOP) for this sender",
                }
                for r in canceled
            ],
        )
    db.session.commit()
    enqueue_first_attempts([r.id for r in inserted if r.status == "queued"])
    return message
