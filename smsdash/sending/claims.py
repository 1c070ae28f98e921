"""What a claim records in its `sending` event, and reading it back.

The claim (job.py: `queued` -> `sending`, attempts + 1) is the one moment a delivery is tied to
the work sending it, so its event says which: the `attempts` count it set, its `try` in the
round, and, when it ran in a worker, the RQ `execution` (`<job id>:<execution id>`). From
those the reconciler tells a delivery whose worker died from one still being sent
(abandoned.py), and which try the dead attempt was.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from smsdash.chunks import chunks
from smsdash.extensions import db
from smsdash.models import Event
from smsdash.worker.heartbeat import current_execution

# Deliveries per IN list: far below every database's bound on bound parameters.
IDS_PER_QUERY = 500


@dataclass(frozen=True)
class Claim:
    attempts: int | None
    try_number: int | None
    execution: str | None

    @classmethod
    def from_payload(cls, payload: dict[str, Any] | None) -> Claim:
        payload = payload or {}

        def number(key: str) -> int | None:
            value = payload.get(key)
            return value if isinstance(value, int) else None

        execution = payload.get("execution")
        return cls(number("attempts"), number("try"), execution if isinstance(execution, str) else None)


def claim_payload(attempts: int, try_number: int) -> dict[str, Any]:
    """The `sending` event's payload for a claim made now, in this thread."""
    payload: dict[str, Any] = {"attempts": attempts, "try": try_number}
    execution = current_execution()
    if execution is not None:
        payload["execution"] = execution
    return payload


def latest_claims(delivery_ids: Collection[int]) -> dict[int, Claim]:
    """The most recent claim of each delivery, by id; deliveries never claimed are missing."""
    claims: dict[int, Claim] = {}
    for group in chunks(sorted(set(delivery_ids)), IDS_PER_QUERY):
        rows = db.session.execute(
            select(Event.delivery_id, Event.payload)
            .where(Event.delivery_id.in_(group), Event.event_type == "sending", Event.source == "job")
            .order_by(Event.id)
        )
        for delivery_id, payload in rows:
            claims[delivery_id] = Claim.from_payload(payload)  # the later claim wins
    return claims


def claimed_try(delivery_id: int, attempts: int) -> int | None:
    """The try number of the claim that brought the delivery's attempts to `attempts`, as its
    `sending` event recorded it; None if no such claim was recorded."""
    claim = latest_claims([delivery_id]).get(delivery_id)
    return claim.try_number if claim is not None and claim.attempts == attempts else None
