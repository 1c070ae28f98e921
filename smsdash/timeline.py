"""A delivery's timeline: appending `comms_events` rows, once each where that matters."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db
from .models import Event, utcnow

SOURCES = frozenset({"app", "job", "twilio", "reconciler"})


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
    if dedupe_key is None:
        db.session.execute(insert(Event).values(**values))
        return True
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(Event).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(Event).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database dialect {dialect}")
    # RETURNING, not rowcount: through the ORM session an INSERT's rowcount is -1 on PostgreSQL.
    return db.session.execute(stmt.returning(Event.id)).first() is not None
