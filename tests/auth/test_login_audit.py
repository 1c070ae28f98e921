"""Every log-in attempt is on the audit log: who (or which email was typed), from where, and why a
failure failed; a deactivated operator's right password fails like a wrong one, and is recorded
as what it was."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from smsdash.extensions import db
from smsdash.models import AuditEntry, User, utcnow
from tests.conftest import TEST_PASSWORD, csrf_token_from

ADDRESS = "198.51.100.23"


def _log_in(client: FlaskClient, email: str, password: str) -> TestResponse:
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ADDRESS},
    )


def _entries(app: Flask) -> list[tuple[str, str, int | None, str | None, dict[str, str]]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        return [(e.action, e.actor_label, e.actor_id, e.address, e.details) for e in rows]


def test_failures_say_why_and_a_success_names_the_operator(app: Flask, client: FlaskClient, operator: User) -> None:
    assert _log_in(client, "nobody@example.com", TEST_PASSWORD).status_code == 401
    assert _log_in(client, operator.email, "not the password").status_code == 401
    assert _log_in(client, operator.email, TEST_PASSWORD).status_code == 302
    token = csrf_token_from(client.get("/messages").get_data(as_text=True))
    client.post("/logout", data={"csrf_token": token}, environ_base={"REMOTE_ADDR": ADDRESS})
    assert _entries(app) == [
        ("login.failure", "anonymous", None, ADDRESS, {"email": "nobody@example.com", "reason": "unknown email"}),
        ("login.failure", "anonymous", None, ADDRESS, {"email": operator.email, "reason": "wrong password"}),
        ("login.success", operator.email, operator.id, ADDRESS, {}),
        ("logout", operator.email, operator.id, ADDRESS, {}),
    ]
    with app.app_context():
        assert db.session.get(User, operator.id).last_login_at is not None


def test_a_deactivated_operator_cannot_log_in_and_the_page_does_not_say_so(
    app: Flask, client: FlaskClient, operator: User
) -> None:
    with app.app_context():
        db.session.get(User, operator.id).deactivated_at = utcnow()
        db.session.commit()
    wrong = _log_in(client, operator.email, "not the password").get_data(as_text=True)
    right = _log_in(client, operator.email, TEST_PASSWORD)
    assert right.status_code == 401
    assert (
        "Email or password is not right." in right.get_data(as_text=True) and "Email or password is not right." in wrong
    )
    assert client.get("/messages").status_code == 302  # still not logged in
    assert [(a, d["reason"]) for a, _, _, _, d in _entries(app)] == [
        ("login.failure", "wrong password"),
        ("login.failure", "deactivated"),
    ]


def test_attempts_the_throttle_refuses_are_not_recorded_one_by_one(
    app: Flask, client: FlaskClient, operator: User
) -> None:
    app.config.update(LOGIN_MAX_FAILURES_PER_ACCOUNT=2)
    statuses = [_log_in(client, operator.email, "not the password").status_code for _ in range(5)]
    assert statuses == [401, 401, 429, 429, 429]
    assert [d["reason"] for _, _, _, _, d in _entries(app)] == ["wrong password", "wrong password"]
