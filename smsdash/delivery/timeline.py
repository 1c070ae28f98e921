"""A delivery's timeline: appending `comms_events` rows, once each where that matters."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import insert

from smsdash.dialects import insert_or_ignore
from smsdash.extensions import db
from smsdash.models import Event, utcnow

SOURCES = frozenset({"app", "job", "twilio", "reconciler"})
_EVENTS = Event.__table__


@cache
def _insert_statement(dialect: str, once: bool) -> Any:
    """The event INSERT, built once: a core statement (no ORM bookkeeping; the webhook runs it
    for every callback), "on conflict do nothing" when it must record once, and RETURNING to
    tell whether a row went in (an INSERT's rowcount is not reliable across drivers)."""
    statement = insert_or_ignore(_EVENTS, dialect) if once else insert(_EVENTS)
    return statement.returning(_EVENTS.c.id)


def record_event(
    delivery_id: int,
    event_type: str,
    *,
    source: str,
    error_code: int | None = None,
    detail: str | None = None,
    occurred_at: datetime | None = None,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """Append one event in the caller's transaction; return False if `dedupe_key` was seen.

    With a `dedupe_key`, the insert is "on conflict do nothing" against the unique
    (delivery_id, dedupe_key) index, so two concurrent copies of one callback record once
    without either of them failing.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown event source {source!r}")
    values = {
        "delivery_id": delivery_id,
        "event_type": event_type,
        "source": source,
        "error_code": error_code,
        "detail": detail,
        "occurred_at": occurred_at,
        "received_at": utcnow(),
        "payload": payload,
        "dedupe_key": dedupe_key,
    }
    db.session.flush()  # core statements skip the ORM's autoflush; pending ORM changes go first
    connection = db.session.connection()
    statement = _insert_statement(connection.dialect.name, dedupe_key is not None)
    return connection.execute(statement, values).first() is not None
