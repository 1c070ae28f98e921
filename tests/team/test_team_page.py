"""The team page: admins only; adding operators, changing roles, deactivating and reactivating,
each audited; refusals shown on the page with nothing changed; the last admin always kept."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smsdash.models import User
from tests.conftest import TEST_PASSWORD, log_in_as
from tests.team.conftest import MakeOperator, audit, fetch, post

LINK = re.compile(r"http://localhost/set-password/[A-Za-z0-9_-]{43}")


@pytest.mark.parametrize("role", ["sender", "viewer"])
def test_the_team_page_is_for_admins_only(
    app: Flask, client: FlaskClient, operator: User, make_operator: MakeOperator, role: str
) -> None:
    make_operator("someone@example.com", role)
    log_in_as(client, "someone@example.com")
    assert client.get("/team").status_code == 403
    for path in ("/team", f"/team/{operator.id}/role", f"/team/{operator.id}/deactivate", f"/team/{operator.id}/link"):
        response = post(client, path, email="x@example.com", role="admin")
        assert response.status_code == 403, path
        assert "Only an admin can do this." in response.get_data(as_text=True)
    assert fetch(app, operator.email).role == "admin" and fetch(app, operator.email).is_active
    assert audit(app, "operator.role") == audit(app, "operator.deactivate") == []
    assert ">Team</a>" not in client.get("/").get_data(as_text=True)


def test_an_admin_sees_every_operator_and_the_nav_link(logged_in: FlaskClient, make_operator: MakeOperator) -> None:
    make_operator("viewer@example.com", "viewer")
    html = logged_in.get("/team").get_data(as_text=True)
    assert "viewer@example.com" in html and "op@example.com" in html
    assert '<label for="role-' in html and '<label for="add-email">Email</label>' in html
    assert "never" in html  # viewer@ has not logged in yet
    assert 'href="/team"' in logged_in.get("/").get_data(as_text=True)


def test_adding_an_operator_shows_their_link_once_and_is_audited(app: Flask, logged_in: FlaskClient) -> None:
    response = post(logged_in, "/team", email=" New@Example.com ", role="viewer")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert LINK.search(html), html
    user = fetch(app, "new@example.com")
    assert user.role == "viewer" and user.is_active
    assert not user.check_password(TEST_PASSWORD)  # a random password nobody knows, until the link
    (created,) = audit(app, "operator.create")
    assert (created.target_type, created.target_id, created.actor_label) == ("operator", user.id, "op@example.com")
    assert created.details == {"email": "new@example.com", "role": "viewer"}
    (made,) = audit(app, "operator.password_link")
    assert made.target_id == user.id
    assert not LINK.search(logged_in.get("/team").get_data(as_text=True))  # shown once


@pytest.mark.parametrize(
    "email, role, error",
    [
        ("op@example.com", "sender", "an operator with email op@example.com already exists"),
        ("not-an-address", "sender", "&#39;not-an-address&#39; is not an email address"),
        ("new@example.com", "owner", "&#39;owner&#39; is not a role: choose admin, sender or viewer"),
    ],
)
def test_a_refused_operator_is_explained_and_nothing_is_added(
    app: Flask, logged_in: FlaskClient, email: str, role: str, error: str
) -> None:
    response = post(logged_in, "/team", email=email, role=role)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert error in html
    assert f'value="{email}"' in html  # what was typed is kept
    assert audit(app, "operator.create") == audit(app, "operator.password_link") == []
    assert "new@example.com" not in logged_in.get("/team").get_data(as_text=True)


def test_changing_a_role_is_audited(app: Flask, logged_in: FlaskClient, make_operator: MakeOperator) -> None:
    user = make_operator("s@example.com", "sender")
    response = post(logged_in, f"/team/{user.id}/role", role="admin")
    assert response.status_code == 302 and response.headers["Location"] == "/team"
    assert fetch(app, "s@example.com").role == "admin"
    (entry,) = audit(app, "operator.role")
    assert (entry.target_id, entry.details["old_role"], entry.details["new_role"]) == (user.id, "sender", "admin")
    post(logged_in, f"/team/{user.id}/role", role="admin")  # no change: nothing to record
    assert len(audit(app, "operator.role")) == 1


def test_a_role_outside_the_three_is_refused(app: Flask, logged_in: FlaskClient, make_operator: MakeOperator) -> None:
    user = make_operator("s@example.com", "sender")
    response = post(logged_in, f"/team/{user.id}/role", role="superuser")
    assert response.status_code == 422
    assert "&#39;superuser&#39; is not a role" in response.get_data(as_text=True)
    assert fetch(app, "s@example.com").role == "sender"
    assert audit(app, "operator.role") == []


def test_the_last_admin_can_be_neither_demoted_nor_deactivated(
    app: Flask, logged_in: FlaskClient, operator: User, make_operator: MakeOperator
) -> None:
    """A deactivated admin does not count: they cannot run the team."""
    gone = make_operator("gone@example.com", "admin")
    post(logged_in, f"/team/{gone.id}/deactivate")
    for path, data in ((f"/team/{operator.id}/role", {"role": "sender"}), (f"/team/{operator.id}/deactivate", {})):
        response = post(logged_in, path, **data)
        assert response.status_code == 422, path
        assert "op@example.com is the last active admin" in response.get_data(as_text=True)
    me = fetch(app, operator.email)
    assert me.role == "admin" and me.is_active
    assert audit(app, "operator.role") == []
    assert [e.target_id for e in audit(app, "operator.deactivate")] == [gone.id]
    assert logged_in.get("/team").status_code == 200  # still logged in, still an admin


def test_an_admin_may_step_down_while_another_admin_remains(
    app: Flask, logged_in: FlaskClient, operator: User, make_operator: MakeOperator
) -> None:
    make_operator("other-admin@example.com", "admin")
    response = post(logged_in, f"/team/{operator.id}/role", role="viewer")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert fetch(app, operator.email).role == "viewer"
    assert logged_in.get("/team").status_code == 403  # at the next click


def test_deactivating_ends_the_operators_live_sessions_at_once(
    app: Flask, logged_in: FlaskClient, make_operator: MakeOperator
) -> None:
    victim = make_operator("victim@example.com", "sender")
    victim_client = log_in_as(app.test_client(), victim.email)
    assert victim_client.get("/").status_code == 200
    assert post(logged_in, f"/team/{victim.id}/deactivate").status_code == 302
    response = victim_client.get("/messages")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    htmx = victim_client.get("/messages/poll", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    (entry,) = audit(app, "operator.deactivate")
    assert entry.target_id == victim.id and entry.actor_label == "op@example.com"
    assert "deactivated" in logged_in.get("/team").get_data(as_text=True)


def test_a_reactivated_operator_logs_in_with_their_old_password(
    app: Flask, logged_in: FlaskClient, make_operator: MakeOperator
) -> None:
    user = make_operator("back@example.com", "viewer")
    post(logged_in, f"/team/{user.id}/deactivate")
    assert post(logged_in, f"/team/{user.id}/reactivate").status_code == 302
    assert fetch(app, user.email).is_active
    log_in_as(app.test_client(), user.email)
    (entry,) = audit(app, "operator.reactivate")
    assert entry.target_id == user.id


def test_an_unknown_operator_is_404(logged_in: FlaskClient) -> None:
    assert post(logged_in, "/team/999/role", role="viewer").status_code == 404
