"""Per-message roll-ups: how many deliveries are in each status, and a version for live polling.

One GROUP BY over the (message_id, status, updated_at) index answers both the counters and
"did anything change?": every status move changes two counts, so the version catches even a
transaction that commits late with an older `updated_at`; the newest `updated_at` catches
changes that keep the status (an error code filled in later).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from sqlalchemy import func, select

from .extensions import db
from .models import Delivery
from .status import FAILURES, FINAL

# The counters every message shows, in the order a delivery moves through them.
COUNTERS = ("queued", "sending", "sent", "delivered", "undelivered", "failed")
# Statuses folded into a counter so the roll-up stays six numbers wide.
_FOLD = {"accepted": "queued", "scheduled": "queued", "read": "delivered", "partially_delivered": "delivered"}


@dataclass(frozen=True)
class Rollup:
    """Counts per status for one message, with what the progress bar and the poller need."""

    counts: dict[str, int] = field(default_factory=dict)
    last_update: datetime | None = None

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
    def version(self) -> str:
        stamp = self.last_update.isoformat() if self.last_update else ""
        raw = ";".join(f"{s}={n}" for s, n in sorted(self.counts.items())) + "@" + stamp
        return hashlib.blake2s(raw.encode(), digest_size=8).hexdigest()


def rollups(message_ids: Iterable[int]) -> dict[int, Rollup]:
    """Roll-ups for many messages in one query; a message with no deliveries gets an empty one."""
    ids = list(set(message_ids))
    counts: dict[int, dict[str, int]] = {mid: {} for mid in ids}
    latest: dict[int, datetime | None] = dict.fromkeys(ids)
    if ids:
        rows = db.session.execute(
            select(Delivery.message_id, Delivery.status, func.count(), func.max(Delivery.updated_at))
            .where(Delivery.message_id.in_(ids))
            .group_by(Delivery.message_id, Delivery.status)
        )
        for mid, status, n, newest in rows:
            counts[mid][status] = n
            if newest is not None and (latest[mid] is None or newest > latest[mid]):
                latest[mid] = newest
    return {mid: Rollup(counts[mid], latest[mid]) for mid in ids}


def rollup(message_id: int) -> Rollup:
    return rollups([message_id])[message_id]
