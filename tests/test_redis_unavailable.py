"""Redis down: compose and `sms send` still commit the message and say that sending starts when
Redis is back; their client gives up without waiting out redis-py's retries (counted, not timed:
DESIGN.md keeps speed in bench/), while the worker's patient client rides out a short outage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash import redis_conn
from smsdash.extensions import db
from smsdash.models import Delivery
from smsdash.redis_conn import connect, shareable_url
from tests.conftest import csrf_token_from

NOTE = (
    "Not sent yet: Redis (the job queue) cannot be reached. The 2 deliveries are saved as queued, "
    "and sending starts by itself once Redis is back (the worker looks every 30 s)."
)


@pytest.fixture(params=["tcp port", "embedded socket"])
def redis_down(
    request: pytest.FixtureRequest, app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Point the app at a Redis nobody answers: a closed TCP port, or an embedded server whose
    socket is gone (the client redis-py builds from arguments, which retried for ~4 s)."""
    if request.param == "tcp port":
        monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    else:
        db_file = str(tmp_path / "stopped-redis.db")
        monkeypatch.setitem(
            redis_conn._servers, db_file, (SimpleNamespace(socket_file=str(tmp_path / "gone.sock")), [])
        )
        monkeypatch.setitem(app.config, "REDIS_URL", None)
        monkeypatch.setitem(app.config, "EMBEDDED_REDIS_PATH", db_file)
    monkeypatch.setitem(app.extensions, "smsdash_redis", None)  # clients for the live Redis are not reused
    yield
    monkeypatch.undo()  # before `app` empties the live Redis (monkeypatch itself may outlive `app`)


def _deliveries(app: Flask) -> list[tuple[str, str, Any]]:
    with app.app_context():
        return [
            (d.to_number, d.status, d.enqueued_at) for d in db.session.scalars(select(Delivery).order_by(Delivery.id))
        ]


@pytest.mark.usefixtures("redis_down")
def test_compose_keeps_the_deliveries_queued_and_says_sending_waits_for_redis(
    app: Flask, logged_in: FlaskClient
) -> None:
    token = csrf_token_from(logged_in.get("/messages/new").get_data(as_text=True))
    response = logged_in.post(
        "/messages/new", data={"recipients": "+14155550101, +14155550102", "body": "Hi", "csrf_token": token}
    )
    assert response.status_code == 302
    assert _deliveries(app) == [("+14155550101", "queued", None), ("+14155550102", "queued", None)]
    page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
    assert f'<p class="flash flash-warning" role="status">{NOTE}</p>' in page


@pytest.mark.usefixtures("redis_down")
def test_sms_send_says_the_same(app: Flask, runner: Any) -> None:
    result = runner.invoke(args=["sms", "send", "--to", "+14155550101", "--to", "+14155550102", "--body", "Hi"])
    assert result.exit_code == 0, result.output
    assert NOTE in result.stderr
    assert [status for _, status, _ in _deliveries(app)] == ["queued", "queued"]


def test_compose_with_redis_up_says_nothing_about_redis(app: Flask, logged_in: FlaskClient) -> None:
    token = csrf_token_from(logged_in.get("/messages/new").get_data(as_text=True))
    response = logged_in.post(
        "/messages/new", data={"recipients": "+14155550101", "body": "Hi", "csrf_token": token}, follow_redirects=True
    )
    assert "Redis" not in response.get_data(as_text=True)
    assert all(enqueued_at is not None for _, _, enqueued_at in _deliveries(app))


def test_the_patient_client_rides_out_a_restart_and_the_fail_fast_one_does_not_wait(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis refusing connections for a moment (a restart): the worker's client retries until it
    is back; compose's client gives up after its one immediate retry, without sleeping."""
    url = shareable_url(app)  # built from a URL, as REDIS_URL deployments are
    patient, fail_fast = connect(url, ""), connect(url, "", fail_fast=True)
    connection_class = patient.connection_pool.connection_class
    real_connect = connection_class._connect
    refusals = {"left": 0, "attempts": 0}

    def restarting(self: Any) -> Any:
        refusals["attempts"] += 1
        if refusals["left"]:
            refusals["left"] -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        return real_connect(self)

    sleeps: list[float] = []
    monkeypatch.setattr(connection_class, "_connect", restarting)
    monkeypatch.setattr("redis.retry.sleep", lambda seconds: sleeps.append(seconds))
    try:
        refusals.update(left=3, attempts=0)
        assert patient.ping() is True
        assert refusals["attempts"] == 4 and len(sleeps) == 3

        refusals.update(left=100, attempts=0)
        sleeps.clear()
        with pytest.raises(redis.ConnectionError):
            fail_fast.ping()
        assert refusals["attempts"] == 2 and sleeps in ([], [0])
    finally:
        monkeypatch.undo()  # before `app` empties the live Redis
        for client in (patient, fail_fast):
            client.connection_pool.disconnect()
