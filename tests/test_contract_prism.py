"""Contract: the app's Twilio requests match Twilio's own OpenAPI specs (API 2010, Messaging v1), served by Prism.

Prism (`prism mock -d`, pinned in tests/contract/package.json, installed by `.ci/run` with
`npm ci`) rejects any request the real API would not accept with HTTP 422: a StatusCallback that
is not a URL, a malformed AccountSid, a missing To. So a send that Prism answers with 201 is a
request Twilio's schema accepts. The spec comes from `../shared/twilio-oai/` beside the repo.
Locally the tests skip, saying why, when node or Prism is missing; under CI=true they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from twilio.base.exceptions import TwilioRestException

from smsdash.devserver import free_port
from smsdash.twilio.client import build_client
from smsdash.twilio.messages_api import send_sms
from smsdash.twilio.public_url import status_callback_url

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO.parent / "shared" / "twilio-oai"
SPEC = SPECS / "twilio_api_v2010.json"
MESSAGING_SPEC = SPECS / "twilio_messaging_v1.json"
CONTRACT_DIR = REPO / "tests" / "contract"
PRISM = CONTRACT_DIR / "node_modules" / ".bin" / "prism"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
STARTUP_SECONDS = 90.0


def _unavailable() -> str | None:
    for spec in (SPEC, MESSAGING_SPEC):
        if not spec.is_file():
            return f"Twilio's OpenAPI spec is not at {spec} (shared/ must sit beside the repo)"
    if shutil.which("node") is None:
        return "node is not installed, so Stoplight Prism cannot run"
    if not PRISM.exists():
        return f"Stoplight Prism is not installed: run `npm ci` in {CONTRACT_DIR.relative_to(REPO)}"
    return None


@contextmanager
def _prism(spec: Path, log: Path) -> Iterator[tuple[str, Path]]:
    """A Prism mock of `spec` on a free loopback port: its base URL and its log file."""
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"contract test cannot run under CI: {reason}")
        pytest.skip(reason)
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(PRISM), "mock", "-d", "-h", "127.0.0.1", "-p", str(port), str(spec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while b"Prism is listening" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prism did not start (exit {proc.poll()}):\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Prism serving API 2010 (Messages, Accounts, phone numbers)."""
    with _prism(SPEC, tmp_path_factory.mktemp("prism") / "api.log") as served:
        yield served


@pytest.fixture(scope="module")
def prism_messaging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Prism serving Messaging v1 (Services), which the SDK reaches on another host."""
    with _prism(MESSAGING_SPEC, tmp_path_factory.mktemp("prism") / "messaging.log") as served:
        yield served


def _violations(log: Path) -> str:
    return "\n".join(line for line in log.read_text().splitlines() if "VALIDATOR" in line)


@pytest.fixture
def prism_app(app: Flask, prism: tuple[str, Path]) -> Flask:
    app.config.update(
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN="contract-token",
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_API_BASE_URL=prism[0],
    )
    return app


@pytest.mark.parametrize(
    "sender", [{"TWILIO_FROM_NUMBER": "+15005550006"}, {"TWILIO_MESSAGING_SERVICE_SID": "MG" + "fedcba9876543210" * 2}]
)
def test_send_sms_requests_match_twilios_spec(
    prism_app: Flask, prism: tuple[str, Path], sender: dict[str, str]
) -> None:
    prism_app.config.update(sender)
    with prism_app.app_context():
        callback = status_callback_url(prism_app.config, 42)
        assert callback == "https://smsdash.example.com/webhooks/twilio/status?d=42"
        try:
            message = send_sms("+15558675310", "Your table is ready ✓", callback)
        except TwilioRestException as exc:
            pytest.fail(f"Prism rejected the send ({exc.status}):\n{_violations(prism[1])}")
    assert message.sid.startswith(("SM", "MM"))


def test_prism_rejects_a_request_twilio_would_reject(prism_app: Flask) -> None:
    """The check above can fail: a StatusCallback that is not a URL is answered 422."""
    with prism_app.app_context(), pytest.raises(TwilioRestException) as info:
        send_sms("+15558675310", "hello", "not a url")
    assert info.value.status == 422


def test_messages_list_filters_match_twilios_spec(prism: tuple[str, Path]) -> None:
    """The look-before-resend query: Messages list filtered by To, From and DateSent>."""
    client = build_client(
        {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "contract-token", "TWILIO_API_BASE_URL": prism[0]}
    )
    since = datetime.now(UTC) - timedelta(hours=1)
    page = client.messages.page(to="+15558675310", from_="+15005550006", date_sent_after=since, page_size=50)
    assert isinstance(list(page), list)


def test_configure_webhooks_service_update_matches_twilios_spec(app: Flask, prism_messaging: tuple[str, Path]) -> None:
    """`twilio configure-webhooks` with a Messaging Service: its fetch and update requests."""
    from smsdash.setup.webhook_setup import plan

    app.config.update(
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN="contract-token",
        TWILIO_MESSAGING_SERVICE_SID="MG" + "fedcba9876543210" * 2,
        TWILIO_API_BASE_URL=prism_messaging[0],
    )
    with app.app_context():
        try:
            steps = plan(app, "https://smsdash.example.com")
            steps.apply()
        except TwilioRestException as exc:
            pytest.fail(f"Prism rejected the request ({exc.status}):\n{_violations(prism_messaging[1])}")
    assert {c.field for c in steps.changes} == {"status_callback", "inbound_request_url", "inbound_method"}
    assert "post /v1/Services/MG" in prism_messaging[1].read_text()  # the update was made
