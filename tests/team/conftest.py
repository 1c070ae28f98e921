"""Operators of each role, and logging a test client in as one of them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from smsdash.extensions import db
from smsdash.models import AuditEntry, User
from tests.conftest import TEST_PASSWORD, add_operator_row, csrf_token_from

MakeOperator = Callable[..., User]


@pytest.fixture(autouse=True)
def one_operator_per_request(app: Flask) -> None:
    """Let two test clients be two operators.

    pytest-flask keeps a request context pushed for the whole test, so every request shares its
    app context and `g`, where Flask-Login caches the request's operator and Flask-WTF its CSRF
    token: the second client would act as the first. In production each request has its own."""

    def forget() -> None:
        g.pop("_login_user", None)
        g.pop("csrf_token", None)

    app.before_request_funcs.setdefault(None, []).insert(0, forget)


@pytest.fixture
def make_operator(app: Flask) -> MakeOperator:
    """Add an operator with `role` (and TEST_PASSWORD) straight to the database."""

    def make(email: str, role: str = "sender", password: str = TEST_PASSWORD) -> User:
        return add_operator_row(app, email, role, password)

    return make


def post(client: FlaskClient, path: str, **data: str) -> TestResponse:
    """POST a form as a logged-in operator, with the session's CSRF token (any page carries it)."""
    token = csrf_token_from(client.get("/account/password").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def audit(app: Flask, action: str) -> list[AuditEntry]:
    with app.app_context():
        entries = list(
            db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
        )
        db.session.expunge_all()
        return entries


def fetch(app: Flask, email: str) -> User:
    with app.app_context():
        user = db.session.scalars(select(User).where(User.email == email)).one()
        db.session.expunge(user)
        return user
