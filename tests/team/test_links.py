"""Set-password links: made by an admin, shown once, stored only as a hash; they work once,
expire, are voided by a newer link or a deactivation, and end the operator's old sessions."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from smsdash.config import load_config
from smsdash.extensions import db
from smsdash.models import PasswordLink, User
from smsdash.team import links
from tests.conftest import csrf_token_from, log_in_as
from tests.team.conftest import MakeOperator, audit, fetch, post

NEW_PASSWORD = "a brand new secret"
TOKEN = re.compile(r"http://localhost/set-password/([A-Za-z0-9_-]{43})")


def _link_for(admin: FlaskClient, user: User) -> str:
    response = post(admin, f"/team/{user.id}/link")
    assert response.status_code == 200, response.get_data(as_text=True)
    match = TOKEN.search(response.get_data(as_text=True))
    assert match
    return match.group(1)


def _use(client: FlaskClient, token: str, password: str = NEW_PASSWORD, confirm: str | None = None) -> TestResponse:
    page = client.get(f"/set-password/{token}")
    if page.status_code != 200:
        return page
    data = {"password": password, "confirm": password if confirm is None else confirm}
    return client.post(
        f"/set-password/{token}", data={"csrf_token": csrf_token_from(page.get_data(as_text=True)), **data}
    )


@pytest.fixture
def newcomer(make_operator: MakeOperator) -> User:
    return make_operator("new@example.com", "sender")


def test_a_link_sets_the_password_once(app: Flask, logged_in: FlaskClient, newcomer: User) -> None:
    token = _link_for(logged_in, newcomer)
    stranger = app.test_client()
    page = stranger.get(f"/set-password/{token}")
    assert page.status_code == 200 and "new@example.com" in page.get_data(as_text=True)
    assert '<label for="password">New password</label>' in page.get_data(as_text=True)
    response = _use(stranger, token)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "Your password is set. Log in with it." in stranger.get("/login").get_data(as_text=True)
    log_in_as(stranger, newcomer.email, NEW_PASSWORD)
    again = app.test_client().get(f"/set-password/{token}")
    assert again.status_code == 410
    assert "used already" in again.get_data(as_text=True) and "Ask an admin for a new link." in again.get_data(
        as_text=True
    )
    (entry,) = audit(app, "password.set")
    assert (entry.target_id, entry.actor_id, entry.actor_label) == (newcomer.id, newcomer.id, newcomer.email)


def test_a_link_used_meanwhile_is_not_used_again(
    app: Flask, logged_in: FlaskClient, newcomer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request uses the link between this one's check and its claim: the conditional
    UPDATE finds it used, and this password is not set."""
    token = _link_for(logged_in, newcomer)
    real_check = links.check_new_password

    def other_request_wins(password: str) -> None:
        real_check(password)
        with db.engine.begin() as other:
            other.execute(update(PasswordLink).values(used_at=datetime.now(UTC)))

    monkeypatch.setattr(links, "check_new_password", other_request_wins)
    with app.app_context():
        with pytest.raises(links.LinkRefused) as refused:
            links.set_password_with_link(token, NEW_PASSWORD)
    assert refused.value.reason == "used"
    assert not fetch(app, newcomer.email).check_password(NEW_PASSWORD)
    assert audit(app, "password.set") == []


def test_using_a_link_ends_the_operators_old_sessions(app: Flask, logged_in: FlaskClient, newcomer: User) -> None:
    """Someone who knew the old password (or kept a session open) is out the moment it changes."""
    old_session = log_in_as(app.test_client(), newcomer.email)
    assert old_session.get("/").status_code == 200
    _use(app.test_client(), _link_for(logged_in, newcomer))
    assert old_session.get("/").headers["Location"].startswith("/login")


def test_a_link_expires(app: Flask, logged_in: FlaskClient, newcomer: User) -> None:
    token = _link_for(logged_in, newcomer)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=47, minutes=59), tick=False):
        assert app.test_client().get(f"/set-password/{token}").status_code == 200
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=48, minutes=1), tick=False):
        response = _use(app.test_client(), token)
        assert response.status_code == 410
        assert "expired" in response.get_data(as_text=True)
    assert not fetch(app, newcomer.email).check_password(NEW_PASSWORD)
    assert audit(app, "password.set") == []


def test_link_hours_come_from_the_config(app: Flask, logged_in: FlaskClient, newcomer: User, tmp_path: Path) -> None:
    assert load_config(str(tmp_path), {})["PASSWORD_LINK_HOURS"] == 48
    assert load_config(str(tmp_path), {"PASSWORD_LINK_HOURS": "2"})["PASSWORD_LINK_HOURS"] == 2
    app.config["PASSWORD_LINK_HOURS"] = 2
    token = _link_for(logged_in, newcomer)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=2, minutes=1), tick=False):
        assert app.test_client().get(f"/set-password/{token}").status_code == 410


def test_an_unknown_link_is_404(client: FlaskClient) -> None:
    response = client.get("/set-password/not-a-real-token")
    assert response.status_code == 404
    assert "Ask an admin for a new link." in response.get_data(as_text=True)


def test_a_newer_link_voids_the_older(app: Flask, logged_in: FlaskClient, newcomer: User) -> None:
    older = _link_for(logged_in, newcomer)
    newer = _link_for(logged_in, newcomer)
    assert _use(app.test_client(), older).status_code == 410
    assert _use(app.test_client(), newer).status_code == 302
    assert [e.target_id for e in audit(app, "operator.password_link")] == [newcomer.id, newcomer.id]


def test_deactivating_voids_the_link_and_refuses_new_ones(app: Flask, logged_in: FlaskClient, newcomer: User) -> None:
    token = _link_for(logged_in, newcomer)
    post(logged_in, f"/team/{newcomer.id}/deactivate")
    assert app.test_client().get(f"/set-password/{token}").status_code == 410
    refused = post(logged_in, f"/team/{newcomer.id}/link")
    assert refused.status_code == 422 and "reactivate them before making a link" in refused.get_data(as_text=True)


def test_a_short_or_mistyped_password_keeps_the_link(app: Flask, logged_in: FlaskClient, newcomer: User) -> None:
    token = _link_for(logged_in, newcomer)
    short = _use(app.test_client(), token, password="short")
    assert short.status_code == 422 and "use at least 8 characters" in short.get_data(as_text=True)
    mistyped = _use(app.test_client(), token, confirm="something else")
    assert mistyped.status_code == 422 and "The two passwords differ." in mistyped.get_data(as_text=True)
    assert _use(app.test_client(), token).status_code == 302


def test_only_the_tokens_hash_is_stored(app: Flask, logged_in: FlaskClient, newcomer: User) -> None:
    token = _link_for(logged_in, newcomer)
    with app.app_context():
        link = db.session.scalars(select(PasswordLink)).one()
        assert link.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
        assert link.created_by_id is not None and link.user_id == newcomer.id


def test_a_new_operators_link_lets_them_in(app: Flask, logged_in: FlaskClient) -> None:
    response = post(logged_in, "/team", email="fresh@example.com", role="viewer")
    match = TOKEN.search(response.get_data(as_text=True))
    assert match
    _use(app.test_client(), match.group(1))
    log_in_as(app.test_client(), "fresh@example.com", NEW_PASSWORD)
