"""The team service's one hard rule under concurrency: two admins demoting each other at the
same moment leave one admin, not none."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select, text

from smsdash.auth.operators import OperatorError
from smsdash.extensions import db
from smsdash.models import User
from smsdash.team.operators import LastAdmin, change_role
from tests.team.conftest import MakeOperator, audit


@pytest.fixture
def on_postgres(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("row locks and concurrent transactions are PostgreSQL's")


def test_two_admins_demoting_each_other_at_once_leave_one(
    app: Flask, on_postgres: None, make_operator: MakeOperator
) -> None:
    """The first demotion holds its transaction open until the second is seen waiting on the
    admins' row locks in pg_stat_activity: the two really overlap, and the second, counting
    again once the first commits, is refused."""
    admins = [make_operator("a@example.com", "admin"), make_operator("b@example.com", "admin")]
    with app.app_context():
        engine = db.engine
    first = threading.Lock()

    def hold_until_the_other_waits(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("UPDATE users SET role") or not first.acquire(blocking=False):
            return
        with engine.connect() as watcher:
            for _ in range(1000):
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT users.id %FOR UPDATE'"
                    )
                ).scalar()
                if waiting:
                    return
                time.sleep(0.01)
        raise AssertionError("the second demotion never waited on the first's locks")

    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def demote(user: User) -> None:
        with app.app_context():
            barrier.wait()
            try:
                change_role(db.session.get(User, user.id), "sender")
                outcomes.append("demoted")
            except LastAdmin:
                outcomes.append("refused")

    event.listen(engine, "after_cursor_execute", hold_until_the_other_waits)
    try:
        threads = [threading.Thread(target=demote, args=(admin,)) for admin in admins]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        event.remove(engine, "after_cursor_execute", hold_until_the_other_waits)
    assert sorted(outcomes) == ["demoted", "refused"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User).where(User.role == "admin")) == 1
    assert len(audit(app, "operator.role")) == 1


def test_an_unknown_role_is_refused_by_the_service(app: Flask, make_operator: MakeOperator) -> None:
    user = make_operator("s@example.com", "sender")
    with app.app_context():
        with pytest.raises(OperatorError, match="'Owner' is not a role") as refused:
            change_role(db.session.get(User, user.id), "Owner")
        assert refused.value.field == "role"
        assert change_role(db.session.get(User, user.id), " VIEWER ")  # names are normalised
