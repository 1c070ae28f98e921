"""What is waiting to go out, and changing or canceling it before it does.

Every change is conditional on the deliveries still being `scheduled`, the same test the
release makes, so an edit or a cancel that races the release either wins for every waiting
delivery or finds nothing left to change: a text already on its way is never altered or
half-canceled. Who did it and when goes into each delivery's timeline, and into the audit log
in the same commit (message.edit, message.cancel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, func, insert, select, update

from smsdash.audit.record import record
from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message, User, utcnow
from smsdash.schedules.quiet_hours import describe_hold, holds
from smsdash.schedules.when import Later, describe


class NotScheduled(LookupError):
    """Nothing of the message is waiting any more: sent, canceled, or never scheduled."""

    def __init__(self, message_id: int) -> None:
        super().__init__(
            f"message {message_id} has nothing waiting to be sent: it has gone out, was canceled, "
            "or was never scheduled"
        )


@dataclass(frozen=True)
class Waiting:
    """A message with deliveries still `scheduled`: what the scheduled page and `sms scheduled` list."""

    message: Message
    count: int
    next_at: datetime

    @property
    def author(self) -> str:
        return self.message.author.email if self.message.author else "the command line"


def waiting(limit: int = 200) -> list[Waiting]:
    """Messages with deliveries waiting, the one going out next first."""
    rows = db.session.execute(
        select(Delivery.message_id, func.count(), func.min(Delivery.send_after))
        .where(Delivery.status == "scheduled")
        .group_by(Delivery.message_id)
        .order_by(func.min(Delivery.send_after), Delivery.message_id)
        .limit(limit)
    ).all()
    messages = {m.id: m for m in db.session.scalars(select(Message).where(Message.id.in_([r[0] for r in rows])))}
    return [Waiting(messages[message_id], count, next_at) for message_id, count, next_at in rows if next_at]


def who(user: User | None) -> str:
    return user.email if user is not None else "the command line"


def claim(message_id: int) -> Sequence[Row[int, str, int | None]]:
    """Lock the message's waiting deliveries for a change in this transaction (id, number,
    contact), or NotScheduled. On PostgreSQL a release running now waits for this transaction,
    then re-checks the status; on SQLite the write holds the database."""
    rows = db.session.execute(
        update(Delivery)
        .where(Delivery.message_id == message_id, Delivery.status == "scheduled")
        .values(updated_at=utcnow())
        .returning(Delivery.id, Delivery.to_number, Delivery.contact_id)
        .execution_options(synchronize_session=False)
    ).all()
    if not rows:
        db.session.rollback()
        raise NotScheduled(message_id)
    return rows


def note(delivery_ids: Sequence[int], event_type: str, detail: str) -> None:
    """One timeline event on each delivery, in the caller's transaction."""
    now = utcnow()
    db.session.execute(
        insert(Event),
        [
            {"delivery_id": i, "event_type": event_type, "source": "app", "received_at": now, "detail": detail}
            for i in delivery_ids
        ],
    )


def cancel(message_id: int, user: User | None) -> int:
    """Cancel every delivery of the message still waiting; commits, returns how many."""
    ids = [
        r.id
        for r in db.session.execute(
            update(Delivery)
            .where(Delivery.message_id == message_id, Delivery.status == "scheduled")
            .values(status="canceled", updated_at=utcnow())
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
    ]
    if not ids:
        db.session.rollback()
        raise NotScheduled(message_id)
    note(ids, "canceled", f"canceled before it was sent, by {who(user)}")
    record("message.cancel", "message", message_id, details={"deliveries": len(ids)}, actor=user)
    db.session.commit()
    return len(ids)


def reschedule(message_id: int, later: Later, user: User | None) -> int:
    """Move the message's waiting deliveries to a new time (checked by `send_time`), each held
    again for quiet hours as that time requires; commits."""
    rows = claim(message_id)
    message = db.session.get(Message, message_id)
    held = {} if message is None or message.ignore_quiet_hours else holds((r.to_number for r in rows), later.at)
    db.session.execute(
        update(Delivery),
        [{"id": r.id, "send_after": held[r.to_number].until if r.to_number in held else later.at} for r in rows],
    )
    db.session.execute(update(Message).where(Message.id == message_id).values(send_at=later.at, send_zone=later.zone))
    note(
        [r.id for r in rows],
        "scheduled",
        f"time changed by {who(user)}: now to be sent {describe(later.at, later.zone)}",
    )
    by_hold: dict[str, list[int]] = {}
    for r in rows:
        if r.to_number in held:
            by_hold.setdefault(describe_hold(held[r.to_number]), []).append(r.id)
    for detail, ids in by_hold.items():
        note(ids, "scheduled", detail)
    details = {"send_at": later.at.isoformat(), "send_zone": later.zone, "deliveries": len(rows)}
    record("message.edit", "message", message_id, details=details, actor=user)
    db.session.commit()
    return len(rows)
