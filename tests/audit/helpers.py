"""Reading what the audit log holds, for the tests that check an action was recorded once."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import AuditEntry, User

TEST_CLIENT_ADDRESS = "127.0.0.1"  # what werkzeug's test client sends as REMOTE_ADDR


def entries_for(app: Flask, action: str) -> list[AuditEntry]:
    with app.app_context():
        found = db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()
        for entry in found:
            db.session.expunge(entry)
        return list(found)


def only_entry(app: Flask, action: str) -> AuditEntry:
    """The one entry for `action`; fails when there is none or more than one."""
    found = entries_for(app, action)
    assert len(found) == 1, [(e.action, e.details) for e in found]
    return found[0]


def assert_by_operator(entry: AuditEntry, operator: User) -> None:
    assert (entry.actor_id, entry.actor_label, entry.address) == (operator.id, operator.email, TEST_CLIENT_ADDRESS)
