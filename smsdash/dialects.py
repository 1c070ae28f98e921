"""What differs between SQLite and PostgreSQL, in one place: the connection settings SQLite needs
to be shared by two processes, and INSERT ... ON CONFLICT DO NOTHING, which they spell differently.

Events (deduplicated by key) and opt-outs (one per number and sender) are recorded "once, and
quietly if already there", so a repeated callback or a STOP racing a 21610 neither fails nor
writes twice. SQLAlchemy builds it with each dialect's own insert construct.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.sql.dml import Insert


def insert_or_ignore(table: Table, dialect: str) -> Insert:
    """An INSERT into `table` that skips rows clashing with a unique key, for `dialect`."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database dialect {dialect}")  # pragma: no cover


def tune_sqlite(engine: Engine) -> None:
    """WAL and a busy timeout let the web and worker processes share one SQLite file."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
