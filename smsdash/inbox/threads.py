"""One conversation: our deliveries to a number and its replies, in one time-ordered thread.

A thread can hold 10,000 texts, so a page is the newest PAGE items: at most PAGE of each kind
read newest first through the (to_number, id) and (from_number, id) indexes, merged by time,
cut to PAGE. `before` pages back through older texts by time.

The poller's version is the newest reply and delivery of the number plus the status and
`updated_at` of the deliveries on screen: a new text or a badge that moved changes it, and
both are read by primary key or index, so an unchanged poll is two cheap statements.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from smsdash.extensions import db, rows_changed
from smsdash.models import Delivery, InboundMessage, utcnow

PAGE = 50


@dataclass(frozen=True)
class Item:
    """One text in a thread: ours (`delivery`) or theirs (`reply`)."""

    at: datetime
    delivery: Delivery | None = None
    reply: InboundMessage | None = None


@dataclass(frozen=True)
class Thread:
    items: list[Item]  # oldest first, as a chat reads
    older: datetime | None  # `before` for the page of older texts, None when there are none

    @property
    def delivery_ids(self) -> list[int]:
        return [i.delivery.id for i in self.items if i.delivery is not None]


def thread(number: str, before: datetime | None = None) -> Thread:
    """The newest PAGE texts to and from `number` (older than `before` when given)."""
    replies = select(InboundMessage).where(InboundMessage.from_number == number)
    sent = select(Delivery).where(Delivery.to_number == number)
    if before is not None:
        replies = replies.where(InboundMessage.received_at < before)
        sent = sent.where(Delivery.created_at < before)
    items = [
        Item(r.received_at, reply=r)
        for r in db.session.scalars(replies.order_by(InboundMessage.id.desc()).limit(PAGE + 1))
    ]
    items += [
        Item(d.created_at, delivery=d) for d in db.session.scalars(sent.order_by(Delivery.id.desc()).limit(PAGE + 1))
    ]
    items.sort(key=lambda i: i.at, reverse=True)
    page = items[:PAGE]
    return Thread(page[::-1], page[-1].at if len(items) > PAGE else None)


def has_texts(number: str) -> bool:
    """True if anything was sent to or received from `number`: only then is there a conversation
    to show or answer (the reply box is not a way to text any number)."""
    replied = select(InboundMessage.id).where(InboundMessage.from_number == number).exists()
    sent = select(Delivery.id).where(Delivery.to_number == number).exists()
    return bool(db.session.execute(select(replied | sent)).scalar())


def thread_version(number: str, shown: Sequence[int]) -> str:
    """Changes when a text arrives or is sent to `number`, or a delivery on screen moves."""
    newest_reply = select(func.max(InboundMessage.id)).where(InboundMessage.from_number == number).scalar_subquery()
    newest_sent = select(func.max(Delivery.id)).where(Delivery.to_number == number).scalar_subquery()
    raw = ";".join(str(v) for v in db.session.execute(select(newest_reply, newest_sent)).one())
    if shown:
        rows = db.session.execute(
            select(Delivery.id, Delivery.status, Delivery.updated_at)
            .where(Delivery.id.in_(shown))
            .order_by(Delivery.id)
        )
        raw += "|" + ";".join(f"{i}={s}@{u.isoformat()}" for i, s, u in rows)
    return hashlib.blake2s(raw.encode(), digest_size=8).hexdigest()


def mark_read(number: str) -> int:
    """Mark every unread reply from `number` read (for the whole team); the caller commits."""
    return rows_changed(
        update(InboundMessage)
        .where(InboundMessage.from_number == number, InboundMessage.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
