"""A delivery's timeline as an operator reads it: each step, where it came from, and how long it took.

Carrier time (`occurred_at`, e.g. Twilio's RawDlrDoneDate) and our received time are shown
side by side, because a late receipt and a slow handset look the same otherwise. The gap
between steps uses our received times: they come from one clock with sub-second precision,
while carrier times have minute precision (RawDlrDoneDate is YYMMDDhhmm) and no time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import Event
from smsdash.twilio.error_codes import ErrorInfo, explain

SOURCE_LABELS = {
    "app": "smsdash",
    "job": "send job",
    "twilio": "Twilio callback",
    "reconciler": "reconciler (asked Twilio)",
}


@dataclass(frozen=True)
class Step:
    """One event with its readable source, and the gap since the previous step."""

    event: Event
    source_label: str
    after: str | None
    error: ErrorInfo | None


def humanize(delta: timedelta) -> str:
    """'4.2 s', '3 min 5 s', '2 h 4 min': precise for the quick steps, short for the slow ones."""
    seconds = max(0.0, delta.total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def steps(events: Sequence[Event]) -> list[Step]:
    """Turn events (in the order they were recorded) into steps with 'x after y' gaps."""
    result: list[Step] = []
    previous: Step | None = None
    for event in events:
        after = None
        if previous is not None:
            gap = event.received_at - previous.event.received_at
            after = f"{event.event_type} {humanize(gap)} after {previous.event.event_type}"
        step = Step(
            event,
            SOURCE_LABELS.get(event.source, event.source),
            after,
            explain(event.error_code) if event.error_code is not None else None,
        )
        result.append(step)
        previous = step
    return result


def events_for(delivery_ids: Sequence[int]) -> dict[int, list[Event]]:
    """Events for several deliveries (the open timelines) in one query, oldest first."""
    grouped: dict[int, list[Event]] = {did: [] for did in delivery_ids}
    if delivery_ids:
        rows = db.session.scalars(
            select(Event).where(Event.delivery_id.in_(delivery_ids)).order_by(Event.received_at, Event.id)
        )
        for event in rows:
            grouped[event.delivery_id].append(event)
    return grouped
