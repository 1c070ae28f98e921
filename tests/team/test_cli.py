"""The `users` commands: thin wrappers over the team service, so the same rules (roles, the last
admin) hold, and every change is audited with the command line's actor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.globals import _cv_request

from smsdash.models import User
from tests.team.conftest import MakeOperator, audit, fetch


@pytest.fixture(autouse=True)
def like_a_terminal() -> Iterator[None]:
    """Run the commands outside a request, as a terminal does: pytest-flask pushes a request
    context for every test, which would make the audit log's actor an anonymous web visitor."""
    pushed = _cv_request.get(None)
    if pushed is None:
        yield
        return
    pushed.pop()
    yield
    pushed.push()


def test_the_first_operator_is_an_admin_and_later_ones_need_a_role(app: Flask, runner: Any) -> None:
    first = runner.invoke(args=["users", "create", "first@example.com", "--password", "long enough"])
    assert first.exit_code == 0, first.output
    assert "first@example.com (admin)" in first.output
    second = runner.invoke(args=["users", "create", "second@example.com", "--password", "long enough"])
    assert second.exit_code != 0 and "give --role admin, sender or viewer" in second.output
    viewer = runner.invoke(args=["users", "create", "v@example.com", "--role", "viewer", "--password", "long enough"])
    assert viewer.exit_code == 0, viewer.output
    assert fetch(app, "v@example.com").role == "viewer"
    created = audit(app, "operator.create")
    assert [e.details["role"] for e in created] == ["admin", "viewer"]
    assert all(e.actor_label.startswith("cli:") and e.actor_id is None for e in created)


def test_a_role_outside_the_three_is_refused(app: Flask, runner: Any, operator: User) -> None:
    result = runner.invoke(args=["users", "create", "x@example.com", "--role", "owner", "--password", "long enough"])
    assert result.exit_code == 2 and "'owner' is not one of 'admin', 'sender', 'viewer'" in result.output
    assert runner.invoke(args=["users", "set-role", operator.email, "root"]).exit_code == 2
    assert audit(app, "operator.create") == audit(app, "operator.role") == []


def test_set_role_and_the_last_admin(app: Flask, runner: Any, operator: User, make_operator: MakeOperator) -> None:
    make_operator("s@example.com", "sender")
    refused = runner.invoke(args=["users", "set-role", operator.email, "viewer"])
    assert refused.exit_code == 1 and "op@example.com is the last active admin" in refused.output
    assert fetch(app, operator.email).role == "admin"
    promoted = runner.invoke(args=["users", "set-role", "S@example.com", "admin"])
    assert promoted.exit_code == 0 and "s@example.com is now admin." in promoted.output
    demoted = runner.invoke(args=["users", "set-role", operator.email, "viewer"])
    assert demoted.exit_code == 0, demoted.output
    (first, second) = audit(app, "operator.role")
    assert (first.details["old_role"], first.details["new_role"], second.details["new_role"]) == (
        "sender",
        "admin",
        "viewer",
    )
    assert first.actor_label.startswith("cli:")


def test_deactivate_reactivate_and_the_last_admin(
    app: Flask, runner: Any, operator: User, make_operator: MakeOperator
) -> None:
    refused = runner.invoke(args=["users", "deactivate", operator.email])
    assert refused.exit_code == 1 and "last active admin" in refused.output
    assert fetch(app, operator.email).is_active
    sender = make_operator("s@example.com", "sender")
    assert runner.invoke(args=["users", "deactivate", sender.email]).exit_code == 0
    after = fetch(app, sender.email)
    assert not after.is_active and after.session_version == sender.session_version + 1
    assert runner.invoke(args=["users", "reactivate", sender.email]).exit_code == 0
    assert fetch(app, sender.email).is_active
    assert [e.target_id for e in audit(app, "operator.deactivate")] == [sender.id]
    assert [e.target_id for e in audit(app, "operator.reactivate")] == [sender.id]
    unknown = runner.invoke(args=["users", "deactivate", "nobody@example.com"])
    assert unknown.exit_code == 2 and "no operator has the email nobody@example.com" in unknown.output


def test_users_list_is_aligned(runner: Any, operator: User, make_operator: MakeOperator) -> None:
    make_operator("a-much-longer-address@example.com", "viewer")
    runner.invoke(args=["users", "deactivate", "a-much-longer-address@example.com"])
    lines = runner.invoke(args=["users", "list"]).output.splitlines()
    assert lines[0].split() == ["EMAIL", "ROLE", "STATUS", "LAST", "LOG-IN"]
    assert lines[1].startswith("op@example.com ") and lines[2].startswith("a-much-longer-address@example.com ")
    assert "never" in lines[1] and "deactivated" in lines[2]
    for column in ("ROLE", "STATUS", "LAST LOG-IN"):
        start = lines[0].index(column)
        assert all(line[start - 2 : start] == "  " and line[start] != " " for line in lines), column
