"""The usual status callback, for a delivery we know that has its SID, in one PostgreSQL round trip.

Most of a busy day's callbacks are exactly that, and the general path (status.apply_status in
an ORM session) costs BEGIN, a lookup, the conditional UPDATE, the event INSERT and COMMIT:
five round trips and SQLAlchemy's per-statement work. Here one statement does it all, with
CTEs, executed in autocommit mode on a raw connection from the engine's pool, so it commits
(durably, at the server's synchronous_commit) before the webhook answers:

    WITH target   AS (SELECT id of the delivery, only if it already has its SID),
         moved    AS (the state machine's conditional UPDATE ... FROM target RETURNING id),
         recorded AS (INSERT the event ... FROM target ON CONFLICT DO NOTHING RETURNING id)
    SELECT how many rows each step touched

The UPDATE's SET clause and the dedupe key come from status.py, so both paths write the same
columns; concurrent callbacks are as safe as there (a row lock and a re-checked WHERE status,
the unique event index). When `target` is empty (no such delivery, or no SID yet, which needs
the pending inbox) the statement writes nothing and the caller takes the general path.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from sqlalchemy import Integer, bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Dialect, Engine

from smsdash.delivery.callbacks import StatusCallback
from smsdash.delivery.status import Outcome, dedupe_key, move_allowed, move_values
from smsdash.models import Delivery, Event, utcnow

_DELIVERIES = Delivery.__table__
_EVENTS = Event.__table__
_SOURCE = "twilio"


@cache
def _statement(dialect_class: type[Dialect], status: str, with_error: bool, by_id: bool) -> tuple[str, dict[str, Any]]:
    """The statement's SQL for this dialect and the values of its constant parameters, compiled
    once per shape (psycopg prepares it after a few uses on each connection, so the server plans
    it once too). The per-callback parameters are named `p_*`."""
    d = _DELIVERIES.c
    key = d.id == bindparam("p_id") if by_id else d.external_message_id == bindparam("p_sid")
    target = select(d.id).where(key, d.external_message_id.is_not(None)).cte("target")
    moved = (
        update(_DELIVERIES)
        .where(d.id == target.c.id, move_allowed(status, with_error, lambda s: literal_column(f"'{s}'")))
        .values(move_values(status, with_error))
        .returning(d.id)
        .cte("moved")
    )
    e = _EVENTS.c
    event = select(
        target.c.id,
        literal_column(f"'{status}'"),
        literal_column(f"'{_SOURCE}'"),
        bindparam("p_error_code", type_=Integer),
        bindparam("p_occurred_at", type_=e.occurred_at.type),
        bindparam("p_now", type_=e.received_at.type),
        bindparam("p_payload", type_=e.payload.type),
        bindparam("p_dedupe_key", type_=e.dedupe_key.type),
    )
    recorded = (
        pg_insert(_EVENTS)
        .from_select(
            [
                "delivery_id",
                "event_type",
                "source",
                "error_code",
                "occurred_at",
                "received_at",
                "payload",
                "dedupe_key",
            ],
            event,
        )
        .on_conflict_do_nothing()
        .returning(e.id)
        .cte("recorded")
    )
    statement = select(
        *(select(func.count()).select_from(step).scalar_subquery() for step in (target, moved, recorded))
    )
    compiled = statement.compile(dialect=dialect_class())
    return str(compiled), {k: v for k, v in compiled.params.items() if not k.startswith("p_")}


def _run(engine: Engine, sql: str, params: dict[str, Any]) -> tuple[int, int, int]:
    """Execute on a pooled connection in autocommit mode: the one statement is its own transaction
    (no BEGIN/COMMIT round trips). A connection that saw an error is discarded, not pooled."""
    pooled = engine.raw_connection()
    connection: Any = pooled.driver_connection  # psycopg's own connection (None only once closed)
    try:
        connection.autocommit = True
        row: tuple[int, int, int] = connection.execute(sql, params).fetchone()  # one row of three counts
        connection.autocommit = False
    except Exception as exc:
        pooled.invalidate(exc)
        if engine.dialect.is_disconnect(exc, connection, None):  # type: ignore[arg-type]  # it checks the type itself
            raise _Disconnected from exc
        raise
    finally:
        pooled.close()
    return row


class _Disconnected(Exception):
    """The pooled connection was dead (the server restarted or dropped it)."""


def apply_known(engine: Engine, callback: StatusCallback, delivery_ref: int | None) -> Outcome | None:
    """Apply `callback` to its delivery (by our id when given, else by SID) if that delivery exists
    and already has a SID; return None, having written nothing, when it does not.

    PostgreSQL only. Without pool_pre_ping a pooled connection may be dead after a database
    restart: then the pool is replaced and the statement runs once more (it is idempotent: the
    UPDATE is conditional and the event deduplicated), so the callback still gets its 200.
    """
    with_error = callback.error_code is not None
    now = utcnow()
    sql, constants = _statement(type(engine.dialect), callback.status, with_error, delivery_ref is not None)  # type: ignore[arg-type]  # a class is hashable (python/mypy#11470)
    params: dict[str, Any] = {
        **constants,
        "p_id": delivery_ref,
        "p_sid": callback.sid,
        "p_error_code": callback.error_code,
        "p_error_message": callback.error_message,
        "p_occurred_at": callback.occurred_at,
        "p_now": now,
        "p_when": callback.occurred_at or now,
        "p_payload": json.dumps(callback.payload),
        "p_dedupe_key": dedupe_key(_SOURCE, callback.status, callback.error_code),
    }
    try:
        found, moved, recorded = _run(engine, sql, params)
    except _Disconnected:
        engine.dispose()
        found, moved, recorded = _run(engine, sql, params)
    return Outcome(moved=moved == 1, recorded=recorded == 1) if found else None
