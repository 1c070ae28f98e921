"""Log-in throttling: failed attempts are capped per account and per client address, the answer
never tells which emails are operators, and a Redis outage does not lock operators out."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from smsdash.auth import throttle as login_throttle
from smsdash.auth import views as auth
from smsdash.models import User
from tests.conftest import TEST_PASSWORD, csrf_token_from

NOBODY = "nobody@example.com"
LOCKED = re.compile(r"Too many failed log-ins\. Try again in (\d+) minutes?\.")


@pytest.fixture(autouse=True)
def small_limits(app: Flask) -> None:
    app.config.update(LOGIN_MAX_FAILURES_PER_ACCOUNT=3, LOGIN_MAX_FAILURES_PER_IP=6, LOGIN_FAILURE_WINDOW_SECONDS=600)


def _log_in(client: FlaskClient, email: str, password: str, address: str = "203.0.113.7") -> TestResponse:
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )


def _text(response: TestResponse, email: str) -> str:
    """The page without its per-session CSRF token and the email typed, to compare two answers."""
    html = response.get_data(as_text=True)
    return html.replace(csrf_token_from(html), "").replace(f'value="{email}"', "")


def _log_out(client: FlaskClient) -> None:
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/").get_data(as_text=True))})


def _logged_in(client: FlaskClient) -> bool:
    return client.get("/").status_code == 200


def test_an_account_is_locked_after_its_failures_even_for_the_right_password(
    client: FlaskClient, operator: User
) -> None:
    for _ in range(3):
        assert _log_in(client, operator.email, "wrong guess").status_code == 401
    response = _log_in(client, operator.email, TEST_PASSWORD)
    assert response.status_code == 429
    match = LOCKED.search(response.get_data(as_text=True))
    assert match and match.group(1) == "10"
    assert 0 < int(response.headers["Retry-After"]) <= 600
    assert not _logged_in(client)


def test_another_address_cannot_unlock_the_account(client: FlaskClient, operator: User) -> None:
    for n in range(3):
        _log_in(client, operator.email, "wrong guess", address=f"198.51.100.{n}")
    assert _log_in(client, operator.email, TEST_PASSWORD, address="192.0.2.99").status_code == 429


def test_an_address_is_locked_after_failures_spread_over_many_emails(client: FlaskClient, operator: User) -> None:
    for n in range(6):
        assert _log_in(client, f"guess{n}@example.com", "wrong guess").status_code == 401
    assert _log_in(client, operator.email, TEST_PASSWORD).status_code == 429
    assert _log_in(client, operator.email, TEST_PASSWORD, address="192.0.2.99").status_code == 302


def test_unknown_email_and_wrong_password_get_the_same_answer(client: FlaskClient, operator: User) -> None:
    """Same status and page for a real operator and a made-up email, wrong password and lockout
    alike; and the made-up one is checked against a hash too, so it takes as long."""
    for _ in range(3):
        known = _log_in(client, operator.email, "wrong guess", address="198.51.100.1")
        unknown = _log_in(client, NOBODY, "wrong guess", address="198.51.100.2")
        assert (known.status_code, _text(known, operator.email)) == (unknown.status_code, _text(unknown, NOBODY))
    known = _log_in(client, operator.email, "wrong guess", address="198.51.100.1")
    unknown = _log_in(client, NOBODY, "wrong guess", address="198.51.100.2")
    assert known.status_code == unknown.status_code == 429
    assert _text(known, operator.email) == _text(unknown, NOBODY)


def test_an_unknown_email_costs_a_password_hash_check(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    real = auth.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        checked.append(password)
        return real(pwhash, password)

    monkeypatch.setattr(auth, "check_password_hash", counting)
    assert _log_in(client, "nobody@example.com", "a guess").status_code == 401
    assert checked == ["a guess"]


def test_a_success_clears_the_accounts_failures_and_uses_no_address_budget(client: FlaskClient, operator: User) -> None:
    for _ in range(2):  # 2 failures then a success, twice
        _log_in(client, operator.email, "wrong guess")
        _log_in(client, operator.email, "wrong guess")
        assert _log_in(client, operator.email, TEST_PASSWORD).status_code == 302
        _log_out(client)
    # 4 failures and 2 successes from this address: had the successes counted, this 7th would be refused.
    assert _log_in(client, operator.email, TEST_PASSWORD).status_code == 302
    _log_out(client)
    _log_in(client, operator.email, "wrong guess")
    _log_in(client, operator.email, "wrong guess")
    assert _log_in(client, operator.email, TEST_PASSWORD).status_code == 429  # 6 failures: the address's limit


def test_a_form_refused_before_the_password_check_uses_no_attempt(client: FlaskClient, operator: User) -> None:
    for _ in range(5):
        assert client.post("/login", data={"email": operator.email, "password": "x"}).status_code == 400  # no CSRF
    assert _log_in(client, operator.email, TEST_PASSWORD).status_code == 302


@pytest.fixture
def redis_down(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setitem(app.extensions, "smsdash_redis", None)
    yield
    monkeypatch.undo()  # before `app` empties the live Redis


@pytest.mark.usefixtures("redis_down")
def test_with_redis_down_log_in_still_works_unthrottled(
    client: FlaskClient, operator: User, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(4):
        assert _log_in(client, operator.email, "wrong guess").status_code == 401
    assert _log_in(client, operator.email, TEST_PASSWORD).status_code == 302
    assert _logged_in(client)
    assert "login throttling is off while Redis is unreachable" in caplog.text


def test_redis_holds_no_email(app: Flask, client: FlaskClient, operator: User) -> None:
    from smsdash.redis_conn import get_redis

    _log_in(client, operator.email, "wrong guess")
    keys = [k.decode() for k in get_redis(app).scan_iter(login_throttle.KEY_PREFIX + "*")]
    assert len(keys) == 2 and not any("example.com" in key for key in keys)
    assert all(0 < get_redis(app).ttl(key) <= 600 for key in keys)


def test_parallel_guesses_cannot_slip_past_the_limit(
    app: Flask, operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten wrong passwords for one account at once, with a limit of 3: exactly 3 are checked.

    Each guess that reaches the password check waits there until every other guess has either
    reached it too or been refused, so a throttle that counts a failure only after its check
    (test the count, check the password, then add to it: Flask-Limiter's deduct_when) lets all
    ten through, while one that takes its slot before the check refuses seven."""
    app.config["WTF_CSRF_ENABLED"] = False  # ten clients without ten log-in pages
    guesses = 10
    settled = threading.Condition()
    done = [0]
    real_check = User.check_password

    def settle() -> None:
        with settled:
            done[0] += 1
            settled.notify_all()

    def waiting_check(user: User, password: str) -> bool:
        settle()
        with settled:
            assert settled.wait_for(lambda: done[0] == guesses, timeout=30), "a guess never settled"
        return real_check(user, password)

    monkeypatch.setattr(User, "check_password", waiting_check)

    def guess(n: int) -> int:
        response = app.test_client().post(
            "/login",
            data={"email": operator.email, "password": f"guess {n}"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},  # one address each: only the account's limit applies
        )
        if response.status_code == 429:
            settle()
        return response.status_code

    with ThreadPoolExecutor(guesses) as pool:
        answers = sorted(pool.map(guess, range(guesses)))
    assert answers == [401] * 3 + [429] * 7
