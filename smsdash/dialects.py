"""What differs between SQLite and PostgreSQL, in one place: the connection settings SQLite needs
to be shared by two processes, INSERT ... ON CONFLICT DO NOTHING, which they spell differently,
and how a write that may clash with another transaction's unique key is contained.

Events (deduplicated by key) and opt-outs (one per number and sender) are recorded "once, and
quietly if already there", so a repeated callback or a STOP racing a 21610 neither fails nor
writes twice. SQLAlchemy builds it with each dialect's own insert construct.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.sql.dml import Insert


def insert_or_ignore(table: Table, dialect: str) -> Insert:
    """An INSERT into `table` that skips rows clashing with a unique key, for `dialect`."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database dialect {dialect}")  # pragma: no cover


def unique_clash_guard(session: Session | scoped_session[Any]) -> AbstractContextManager[Any]:
    """Wrap a conditional write that checks a unique key is free (NOT EXISTS) before taking it.

    On PostgreSQL a concurrent transaction's uncommitted row is invisible to that check, and once it
    commits our write fails, which would abort the caller's whole transaction: a savepoint keeps the
    failure to this write (the caller catches the IntegrityError). SQLite has one writer at a time,
    so the check saw every row the write could clash with, and no savepoint is opened there:
    pysqlite commits one opened before the transaction's first write when it is released."""
    return session.begin_nested() if session.get_bind().dialect.name == "postgresql" else nullcontext()


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
