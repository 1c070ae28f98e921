"""An operator changing their own password: the current one proves it is them, every other
session ends, this one stays, and the change is audited once."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from smsdash.models import User
from tests.conftest import TEST_PASSWORD, csrf_token_from, log_in_as
from tests.team.conftest import MakeOperator, audit, fetch

NEW_PASSWORD = "another long secret"


def _change(client: FlaskClient, current: str, new: str = NEW_PASSWORD, confirm: str | None = None) -> TestResponse:
    page = client.get("/account/password")
    data = {"current": current, "password": new, "confirm": new if confirm is None else confirm}
    return client.post("/account/password", data={"csrf_token": csrf_token_from(page.get_data(as_text=True)), **data})


def test_changing_the_password_ends_other_sessions_but_keeps_this_one(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    elsewhere = log_in_as(app.test_client(), operator.email)
    response = _change(logged_in, TEST_PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert logged_in.get("/").status_code == 200
    assert elsewhere.get("/").headers["Location"].startswith("/login")
    assert fetch(app, operator.email).check_password(NEW_PASSWORD)
    log_in_as(app.test_client(), operator.email, NEW_PASSWORD)
    (entry,) = audit(app, "password.change")
    assert (entry.target_id, entry.actor_id) == (operator.id, operator.id)


def test_a_wrong_current_password_changes_nothing(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    response = _change(logged_in, "not my password")
    assert response.status_code == 422
    assert "that is not your current password" in response.get_data(as_text=True)
    assert fetch(app, operator.email).check_password(TEST_PASSWORD)
    assert audit(app, "password.change") == []


def test_a_short_or_mistyped_new_password_is_refused(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    short = _change(logged_in, TEST_PASSWORD, "short")
    assert short.status_code == 422 and "use at least 8 characters" in short.get_data(as_text=True)
    mistyped = _change(logged_in, TEST_PASSWORD, confirm="different words")
    assert mistyped.status_code == 422 and "The two passwords differ." in mistyped.get_data(as_text=True)
    assert fetch(app, operator.email).check_password(TEST_PASSWORD)


def test_every_role_may_change_its_own_password(app: Flask, client: FlaskClient, make_operator: MakeOperator) -> None:
    viewer = make_operator("viewer@example.com", "viewer")
    log_in_as(client, viewer.email)
    html = client.get("/").get_data(as_text=True)
    assert 'href="/account/password"' in html  # the header's email links here
    assert '<label for="current">Current password</label>' in client.get("/account/password").get_data(as_text=True)
    assert _change(client, TEST_PASSWORD).status_code == 302
    assert fetch(app, viewer.email).check_password(NEW_PASSWORD)
