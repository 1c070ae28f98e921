"""An audit entry, once written, is never changed or deleted: not through the ORM, not by raw SQL."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from smsdash.audit.record import AuditLogIsAppendOnly, record
from smsdash.extensions import db
from smsdash.models import AuditEntry


def _one_entry() -> int:
    entry = record("contact.create", "contact", 1, details={"name": "Ada"})
    db.session.commit()
    return entry.id


def test_the_orm_refuses_to_update_or_delete_an_entry(app: Flask) -> None:
    with app.app_context():
        entry = db.session.get(AuditEntry, _one_entry())
        assert entry is not None
        entry.actor_label = "someone else"
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
        db.session.rollback()
        db.session.delete(entry)
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
        db.session.rollback()
        assert db.session.scalar(select(AuditEntry.actor_label)) != "someone else"


@pytest.mark.parametrize(
    "statement",
    [
        text("UPDATE audit_log SET actor_label = 'someone else'"),
        text("DELETE FROM audit_log"),
        update(AuditEntry).values(action="logout"),
        delete(AuditEntry),
    ],
    ids=["raw update", "raw delete", "core update", "core delete"],
)
def test_the_database_refuses_sql_that_changes_entries(app: Flask, statement: object) -> None:
    """Core statements bypass the mapper's refusal; migration 0007's triggers still stop them."""
    with app.app_context():
        entry_id = _one_entry()
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(statement)  # type: ignore[call-overload]
        db.session.rollback()
        kept = db.session.get(AuditEntry, entry_id)
        assert kept is not None and (kept.action, kept.actor_label) == ("contact.create", "anonymous")
