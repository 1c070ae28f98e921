"""Deliveries waiting out a retry backoff, as the message page tells an operator about them.

While the send job waits to try again (a 5xx, a timeout, a 429), the delivery stays `sending`:
it is claimed, so no other job may send it. The badge alone cannot tell "at Twilio right now"
from "waiting 40 s after Twilio's internal error", so the page reads the job's `retry` event:
which attempt comes next, when it falls due, and why the last one failed. A 429's wait is told
apart (`rate_limited`): the same attempt goes again, waiting uses up none of the tries, and
the delivery fails only at `give_up_at` if Twilio keeps refusing. Once the next attempt starts
(a new `sending` event) or the status moves on, the latest event is no longer that retry and
nothing is shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import Delivery, Event
from smsdash.twilio.error_codes import ErrorInfo, explain


@dataclass(frozen=True)
class RetryWait:
    """What a waiting delivery's status cell says: the next attempt, when, and the last error."""

    attempt: int | None
    of: int | None
    due_at: datetime | None
    error: ErrorInfo | None  # None when Twilio gave no code (a timeout, a dropped connection)
    reason: str  # the job's own words, for errors without a code
    rate_limited: bool = False  # Twilio asked us to slow down: the same attempt waits its turn
    give_up_at: datetime | None = None  # when a rate-limited delivery stops waiting and fails


def _wait(event: Event) -> RetryWait:
    """The wait a send job's retry event describes, from the fields it records in its payload."""
    payload = event.payload or {}
    due, give_up = payload.get("retry_at"), payload.get("give_up_at")
    return RetryWait(
        attempt=payload.get("next_try"),
        of=payload.get("max_tries"),
        due_at=datetime.fromisoformat(due) if due else None,
        error=explain(event.error_code) if event.error_code is not None else None,
        reason=payload.get("reason", ""),
        rate_limited=bool(payload.get("rate_limited")),
        give_up_at=datetime.fromisoformat(give_up) if give_up else None,
    )


def retry_waits(deliveries: Iterable[Delivery]) -> dict[int, RetryWait]:
    """The waits of these deliveries, by id: one query, and none when no row is `sending`."""
    sending = [d.id for d in deliveries if d.status == "sending"]
    if not sending:
        return {}
    latest: dict[int, Event] = {}
    for event in db.session.scalars(
        select(Event).where(Event.delivery_id.in_(sending)).order_by(Event.received_at, Event.id)
    ):
        latest[event.delivery_id] = event
    return {did: _wait(e) for did, e in latest.items() if e.event_type == "retry" and e.source == "job"}
