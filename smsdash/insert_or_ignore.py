"""INSERT ... ON CONFLICT DO NOTHING, the one statement SQLite and PostgreSQL spell differently.

Events (deduplicated by key) and opt-outs (one per number and sender) are recorded "once, and
quietly if already there", so a repeated callback or a STOP racing a 21610 neither fails nor
writes twice. SQLAlchemy builds it with each dialect's own insert construct.
"""
from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def insert_or_ignore(table: Table, dialect: str) -> Insert:
    """An INSERT into `table` that skips rows clashing with a unique key, for `dialect`."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database dialect {dialect}")  # pragma: no cover
