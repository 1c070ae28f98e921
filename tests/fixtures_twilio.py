"""Twilio for the tests: one simulator per session, reset before each test (tests/conftest.py loads this).

Fixtures
--------
`simulator` -> `smsdash.simulator.Simulator`, running on 127.0.0.1 at an ephemeral port, its
messages, callbacks and knobs reset before (and after) every test. What tests use:

- `.base_url`, `.account_sid`, `.auth_token`, `.from_number` (+15005550006),
  `.messaging_service_sid` (a Messaging Service every simulated account starts with),
  `.client_config()` -> the TWILIO_* config keys pointing at it (for `build_client`).
- `.messages` -> list of `SimMessage` (oldest first): `.sid .to .from_ .body .status_callback
  .messaging_service_sid .status .error_code .params` (the raw create form, e.g. params["Body"]).
  `.message(sid)` -> one of them.
- Knobs: `.set_knobs(latency=0.1, error_429_rate=1.0, timeout_rate=1.0, timeout_mode="close",
  callback_drop_rate=1.0, callback_reorder=True, callback_repeat=1, trial=True,
  verified_numbers=["+1555..."], ...)`; `.knobs` reads them. Names: smsdash/simulator/knobs.py.
  A hung create (timeout_mode="hang") is released as soon as the test ends.
- Callbacks. In tests they are HELD by default (knob hold_callbacks=True) and all delays are 0,
  so nothing reaches the app behind a test's back:
  `.settle()` applies every scheduled status change (fetches then show the final status);
  `.flush_callbacks()` settles, then delivers the held callbacks in order in the test's thread,
  returning their `CallbackRecord`s (`.request.url .params .request.headers .status_code .outcome`);
  `.held_callbacks` lists what is waiting; `.callbacks` lists what was delivered/dropped/errored.
  For Twilio-like background delivery: `.set_knobs(hold_callbacks=False)` and
  `.wait_for_callbacks(n, timeout=5)`.
  Without `twilio_app`, callbacks go to a recorder that sends nothing (status 204), since the
  public host smsdash.example.com is not reachable. `.set_transport(fn)` plugs any callable
  `fn(CallbackRequest) -> int` in for one test.
- `.inbound(from_, body)` plays a recipient's reply (e.g. "STOP") now, signed, to the Messaging
  Service's inbound URL or the number's SmsUrl (set them through the SDK first); its record or None.

`twilio_app` -> the per-test `app` with TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN /
TWILIO_FROM_NUMBER / TWILIO_API_BASE_URL pointed at the simulator (read timeout 2 s, so a hung
create times out fast) and the simulator's callbacks delivered INTO that app through
`app.test_client()`: POST to the callback URL's path and query, Host and scheme taken from the URL
(https://smsdash.example.com), so the X-Twilio-Signature over the public URL validates. Its
teardown fails the test when `twilio_in_transaction()` is not empty.

`twilio_in_transaction` -> a function returning what the Twilio client logged about requests made
with a database transaction open (smsdash/twilio/client.py), from any thread: assert it is [].

`FlaskTransport(app)` and `RecordingTransport()` are importable for tests that need them directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from smsdash.simulator import CallbackRequest, Simulator

ACCOUNT_SID = "AC" + "7e57" * 8
AUTH_TOKEN = "simulator-test-auth-token-0123456"
# Deterministic defaults for tests: no delays, callbacks held until the test flushes them.
TEST_KNOBS: dict[str, Any] = {
    "callback_sent_delay": 0.0,
    "callback_final_delay": 0.0,
    "callback_jitter": 0.0,
    "auto_reply_delay": 0.0,
    "hold_callbacks": True,
    "hang_seconds": 5.0,
    "seed": 1234,
}
TEST_READ_TIMEOUT = 2.0


class RecordingTransport:
    """Sends nothing: the simulator records the callback and this answers 204."""

    def __call__(self, request: CallbackRequest) -> int:
        return 204


class FlaskTransport:
    """Delivers callbacks into a Flask app through its test client, keeping the public URL's host."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(self, request: CallbackRequest) -> int:
        parts = urlsplit(request.url)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
        response = self.app.test_client().post(
            parts.path,
            base_url=f"{parts.scheme}://{parts.netloc}",
            query_string=parts.query,
            data=request.params,
            headers=headers,
        )
        return response.status_code


@pytest.fixture(scope="session")
def _simulator_server() -> Iterator[Simulator]:
    sim = Simulator(ACCOUNT_SID, AUTH_TOKEN, knobs=TEST_KNOBS, transport=RecordingTransport()).start()
    yield sim
    sim.shutdown()


@pytest.fixture
def simulator(_simulator_server: Simulator) -> Iterator[Simulator]:
    """The session's simulator, with fresh state and the test knobs."""
    _simulator_server.reset(TEST_KNOBS)
    yield _simulator_server
    _simulator_server.reset(TEST_KNOBS)


@pytest.fixture
def twilio_app(app: Flask, simulator: Simulator, twilio_in_transaction: Callable[[], list[str]]) -> Iterator[Flask]:
    """The test app talking to the simulator, which calls the app's webhooks back. The test errors
    if the app called Twilio with a database transaction open (the standard, checked everywhere)."""
    app.config.update(
        simulator.client_config(), TWILIO_READ_TIMEOUT=TEST_READ_TIMEOUT, TWILIO_CONNECT_TIMEOUT=TEST_READ_TIMEOUT
    )
    simulator.set_transport(FlaskTransport(app))
    yield app
    simulator.reset(TEST_KNOBS)  # no callback may reach the app while conftest empties its tables
    assert twilio_in_transaction() == [], "Twilio was called with a database transaction open (stack in the log)"


@pytest.fixture
def twilio_in_transaction(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The client's warnings about Twilio requests made with a database transaction open, during the
    test's setup and call (also when asked at teardown, where `caplog.records` has only teardown's)."""
    caplog.set_level(logging.WARNING, logger="smsdash.twilio.client")

    def warnings() -> list[str]:
        records = [r for when in ("setup", "call") for r in caplog.get_records(when)]
        return [r.getMessage() for r in records if r.name == "smsdash.twilio.client"]

    return warnings
