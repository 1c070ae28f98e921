"""Per-message roll-ups: how many deliveries are in each status, and a version for live polling.

One GROUP BY over the (message_id, status, updated_at) index answers both the counters and
"did anything change?": every status move changes two counts, so the version catches even a
transaction that commits late with an older `updated_at`; the newest `updated_at` catches
changes that keep the status (an error code filled in later).

Some news changes no delivery row at all: the send job's `retry` event, a repeated callback with
another error code, a note. The message page needs it for the rows on screen (their badges say
"waiting to retry", their open timelines grow), so its poll asks the same statement to count the
events of those rows too: events are only ever appended, so a new count means a new event, even
one whose transaction committed late.

A message held for approval changes no delivery when another operator approves a scheduled one,
so the message's `approval` rides along in the same statement and is part of the version: every
page showing it (list, message page) updates without a reload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, SQLColumnExpression, func, select

from smsdash.delivery.status import FAILURES, FINAL
from smsdash.extensions import db
from smsdash.models import Delivery, Event, InboundMessage, Message

# The counters every message shows, in the order a delivery moves through them.
COUNTERS = ("queued", "sending", "sent", "delivered", "undelivered", "failed")
# Statuses folded into a counter so the roll-up stays six numbers wide.
_FOLD = {"accepted": "queued", "scheduled": "queued", "read": "delivered", "partially_delivered": "delivered"}


@dataclass(frozen=True)
class Rollup:
    """Counts per status for one message, with what the progress bar and the poller need."""

    counts: dict[str, int] = field(default_factory=dict)
    last_update: datetime | None = None
    events: int = 0  # events of the watched deliveries (the rows on screen), see `rollup`
    replies: int = 0  # texts recipients sent back to this message (delivery/inbound.py)
    approval: str | None = None  # Message.approval (compose/approval.py)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def shown(self) -> list[tuple[str, int]]:
        """The six counters, plus any other status (canceled) that occurs."""
        folded: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        for status, n in self.counts.items():
            key = _FOLD.get(status, status)
            folded[key] = folded.get(key, 0) + n
        return [(s, n) for s, n in folded.items() if s in COUNTERS or n]

    @property
    def final(self) -> int:
        return sum(n for s, n in self.counts.items() if s in FINAL)

    @property
    def in_flight(self) -> bool:
        return self.final < self.total

    def percent(self, group: str) -> float:
        """Share of all deliveries in `group`: ok (delivered/read), warn (undelivered: the carrier
        gave up), bad (failed/canceled), sent (awaiting a receipt), pending (not yet at Twilio)."""
        if not self.total:
            return 0.0
        wanted = {
            "ok": lambda s: s in FINAL and s not in FAILURES and s != "canceled",
            "warn": lambda s: s == "undelivered",
            "bad": lambda s: s in ("failed", "canceled"),
            "sent": lambda s: s == "sent",
            "pending": lambda s: s not in FINAL and s != "sent",
        }[group]
        return 100.0 * sum(n for s, n in self.counts.items() if wanted(s)) / self.total

    @property
    def awaiting_approval(self) -> bool:
        """Held for approval with something still waiting (a held message canceled has nothing)."""
        return self.approval == "awaiting" and bool(self.counts.get("scheduled"))

    @property
    def version(self) -> str:
        stamp = self.last_update.isoformat() if self.last_update else ""
        raw = ";".join(f"{s}={n}" for s, n in sorted(self.counts.items()))
        raw += f"@{stamp}+{self.events}+{self.replies}+{self.approval or ''}"
        return hashlib.blake2s(raw.encode(), digest_size=8).hexdigest()


def _latest(current: datetime | None, newest: datetime | None) -> datetime | None:
    return newest if newest is not None and (current is None or newest > current) else current


def rollups(message_ids: Iterable[int]) -> dict[int, Rollup]:
    """Roll-ups for many messages in one query; a message with no deliveries gets an empty one."""
    ids = list(set(message_ids))
    counts: dict[int, dict[str, int]] = {mid: {} for mid in ids}
    latest: dict[int, datetime | None] = dict.fromkeys(ids)
    approvals: dict[int, str | None] = dict.fromkeys(ids)
    if ids:
        rows = db.session.execute(
            select(Delivery.message_id, Delivery.status, func.count(), func.max(Delivery.updated_at), Message.approval)
            .join(Message, Message.id == Delivery.message_id)
            .where(Delivery.message_id.in_(ids))
            .group_by(Delivery.message_id, Delivery.status, Message.approval)
        )
        for mid, status, n, newest, approval in rows:
            counts[mid][status] = n
            latest[mid] = _latest(latest[mid], newest)
            approvals[mid] = approval
    return {mid: Rollup(counts[mid], latest[mid], approval=approvals[mid]) for mid in ids}


def event_count(delivery_ids: Sequence[int]) -> ScalarSelect[int]:
    """How many events these deliveries have: a scalar subquery over the (delivery_id, dedupe_key)
    index, so it rides along in the roll-up's statement instead of costing a round trip."""
    return select(func.count()).select_from(Event).where(Event.delivery_id.in_(delivery_ids)).scalar_subquery()


def rollup(message_id: int, watching: Sequence[int] = ()) -> Rollup:
    """One message's roll-up with its reply count; with `watching`, its version also changes
    when any of those deliveries gets an event that left its row untouched. Still one statement:
    the replies ride along as a scalar subquery over inbound_messages' message_id index."""
    replies = select(func.count()).select_from(InboundMessage).where(InboundMessage.message_id == message_id)
    approval = select(Message.approval).where(Message.id == message_id)
    columns: list[SQLColumnExpression[Any]] = [
        Delivery.status,
        func.count(),
        func.max(Delivery.updated_at),
        replies.scalar_subquery(),
        approval.scalar_subquery(),
    ]
    if watching:
        columns.append(event_count(watching))
    rows = db.session.execute(select(*columns).where(Delivery.message_id == message_id).group_by(Delivery.status)).all()
    counts: dict[str, int] = {}
    latest: datetime | None = None
    for status, n, newest, *_ in rows:
        counts[status] = n
        latest = _latest(latest, newest)
    return Rollup(
        counts,
        latest,
        events=rows[0][5] if watching and rows else 0,
        replies=rows[0][3] if rows else 0,
        approval=rows[0][4] if rows else None,
    )


def watched_events(delivery_ids: Sequence[int]) -> int:
    """The event count `rollup(..., watching=delivery_ids)` folds in, for a page that renders
    its rows before it can know them (the page's poller must start from the poll's version)."""
    return db.session.execute(select(event_count(delivery_ids))).scalar_one() if delivery_ids else 0
