"""The team service's one hard rule under concurrency: two admins demoting each other at the
same moment leave one admin, not none."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from smsdash.auth.operators import OperatorError
from smsdash.extensions import db
from smsdash.models import User
from smsdash.team.operators import LastAdmin, change_role
from tests.races import first_holds_until_another_waits, run_at_once
from tests.team.conftest import MakeOperator, audit


def test_two_admins_demoting_each_other_at_once_leave_one(
    app: Flask, on_postgres: None, make_operator: MakeOperator
) -> None:
    """The first demotion holds its transaction open until the second is seen waiting on the
    admins' row locks in pg_stat_activity: the two really overlap, and the second, counting
    again once the first commits, is refused."""
    admins = [make_operator("a@example.com", "admin"), make_operator("b@example.com", "admin")]
    with app.app_context():
        engine = db.engine
    outcomes: list[str] = []

    def demote(user: User) -> None:
        try:
            change_role(db.session.get(User, user.id), "sender")
            outcomes.append("demoted")
        except LastAdmin:
            outcomes.append("refused")

    with first_holds_until_another_waits(
        engine,
        "UPDATE users SET role",
        waiting_query_like="SELECT users.id %FOR UPDATE",
        what="the second demotion",
    ):
        run_at_once(app, [lambda admin=admin: demote(admin) for admin in admins])
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
