"""The Twilio simulator: API shapes through the real SDK, magic numbers, signed callbacks, knobs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from flask import Flask, request
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from smsdash.simulator import (
    CREATE_ERRORS_TO,
    TO_FAILED,
    TO_NO_RECEIPT,
    TO_UNREACHABLE,
    HttpTransport,
    KnobError,
    Knobs,
    Simulator,
)
from smsdash.twilio.client import build_client
from tests.fixtures_twilio import FlaskTransport

OK_TO = "+15551230001"
CALLBACK = "https://smsdash.example.com/webhooks/twilio/status?d=7"


@pytest.fixture
def sdk(simulator: Simulator) -> Client:
    return build_client({**simulator.client_config(), "TWILIO_READ_TIMEOUT": 1.0})


def send(sdk: Client, simulator: Simulator, to: str = OK_TO, **extra: Any) -> Any:
    extra.setdefault("status_callback", CALLBACK)
    extra.setdefault("from_", simulator.from_number)
    return sdk.messages.create(to=to, body="hello", **extra)


def statuses(records: Any) -> list[str]:
    return [r.params["MessageStatus"] for r in records]


# -- API shapes -------------------------------------------------------------------------------
def test_create_answers_queued_in_twilios_shape_and_records_the_params(sdk: Client, simulator: Simulator) -> None:
    message = send(sdk, simulator)
    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert (message.status, message.to, message.from_, message.body) == ("queued", OK_TO, "+15005550006", "hello")
    assert message.account_sid == simulator.account_sid and message.direction == "outbound-api"
    assert message.date_created is not None and message.num_segments == "1"
    [recorded] = simulator.messages
    assert (recorded.sid, recorded.to, recorded.status_callback) == (message.sid, OK_TO, CALLBACK)
    assert recorded.params == {"To": OK_TO, "From": "+15005550006", "Body": "hello", "StatusCallback": CALLBACK}


@pytest.mark.parametrize(("to", "code"), sorted(CREATE_ERRORS_TO.items()))
def test_twilios_magic_to_numbers_fail_at_create(sdk: Client, simulator: Simulator, to: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as info:
        send(sdk, simulator, to=to)
    assert (info.value.status, info.value.code) == (400, code)
    assert simulator.messages == [] and simulator.held_callbacks == []


@pytest.mark.parametrize(("from_", "code"), [("+15005550001", 21212), ("+15005550007", 21606), ("+15005550008", 21611)])
def test_twilios_magic_from_numbers_fail_at_create(sdk: Client, simulator: Simulator, from_: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as info:
        send(sdk, simulator, from_=from_)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"body": ""}, 21602),
        ({"body": "x" * 1601}, 21617),
        ({"status_callback": "not a url"}, 21609),
        ({"to": "12345"}, 21211),
    ],
)
def test_requests_twilio_rejects_are_rejected(
    sdk: Client, simulator: Simulator, extra: dict[str, str], code: int
) -> None:
    args = {"to": OK_TO, "body": "hi", "from_": simulator.from_number, "status_callback": CALLBACK, **extra}
    with pytest.raises(TwilioRestException) as info:
        sdk.messages.create(**args)
    assert info.value.code == code


def test_error_bodies_have_twilios_fields_and_bad_credentials_get_20003(simulator: Simulator) -> None:
    url = f"{simulator.base_url}/2010-04-01/Accounts/{simulator.account_sid}/Messages.json"
    response = requests.get(url, auth=(simulator.account_sid, "wrong-token"), timeout=5)
    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert requests.get(url, timeout=5).status_code == 401
    other = url.replace(simulator.account_sid, "AC" + "f" * 32)
    assert requests.get(other, auth=(simulator.account_sid, simulator.auth_token), timeout=5).json()["code"] == 20404


def test_wrong_credentials_through_the_sdk(simulator: Simulator) -> None:
    bad = build_client({**simulator.client_config(), "TWILIO_AUTH_TOKEN": "nope"})
    with pytest.raises(TwilioRestException) as info:
        bad.messages.create(to=OK_TO, from_=simulator.from_number, body="x")
    assert (info.value.status, info.value.code) == (401, 20003)


def test_fetch_follows_the_played_statuses(sdk: Client, simulator: Simulator) -> None:
    sid = send(sdk, simulator, to=TO_UNREACHABLE).sid
    simulator.settle()
    fetched = sdk.messages(sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)
    assert fetched.error_message == "Unreachable destination handset"


def test_list_filters_by_to_from_and_date_sent(sdk: Client, simulator: Simulator) -> None:
    first = send(sdk, simulator).sid
    second = send(sdk, simulator, to="+15551230002").sid
    now = datetime.now(UTC)
    assert [m.sid for m in sdk.messages.list(to=OK_TO)] == [first]
    assert {m.sid for m in sdk.messages.list(from_=simulator.from_number)} == {first, second}
    assert sdk.messages.list(from_="+15550000000") == []
    assert [m.sid for m in sdk.messages.list(to=OK_TO, date_sent_after=now - timedelta(minutes=1))] == [first]
    assert sdk.messages.list(to=OK_TO, date_sent_after=now + timedelta(minutes=1)) == []
    assert [m.sid for m in sdk.messages.list(date_sent_before=now + timedelta(minutes=1))] == [second, first]
    assert sdk.messages.list(date_sent_before=now - timedelta(minutes=1)) == []
    raw = requests.get(
        f"{simulator.base_url}/2010-04-01/Accounts/{simulator.account_sid}/Messages.json",
        params={"DateSent": now.date().isoformat()},
        auth=(simulator.account_sid, simulator.auth_token),
        timeout=5,
    ).json()
    assert [m["sid"] for m in raw["messages"]] == [second, first]


def test_list_pages_like_twilio(sdk: Client, simulator: Simulator) -> None:
    sids = [send(sdk, simulator).sid for _ in range(5)]
    page = sdk.messages.page(to=OK_TO, page_size=2)
    assert [m.sid for m in page] == sids[::-1][:2]
    assert page.next_page_url is not None
    assert [m.sid for m in sdk.messages.stream(to=OK_TO, page_size=2)] == sids[::-1]


def test_account_type_caller_ids_and_trial_mode(sdk: Client, simulator: Simulator) -> None:
    assert sdk.api.v2010.accounts(simulator.account_sid).fetch().type == "Full"
    verified = "+15551239999"
    simulator.set_knobs(trial=True, verified_numbers=[verified])
    assert sdk.api.v2010.accounts(simulator.account_sid).fetch().type == "Trial"
    assert [c.phone_number for c in sdk.outgoing_caller_ids.list()] == [verified]
    with pytest.raises(TwilioRestException) as info:
        send(sdk, simulator, to=OK_TO)
    assert info.value.code == 21608
    assert send(sdk, simulator, to=verified).status == "queued"


def test_messaging_service_and_phone_number_webhooks_can_be_read_and_updated(sdk: Client, simulator: Simulator) -> None:
    service = sdk.messaging.v1.services(simulator.messaging_service_sid)
    service.update(
        status_callback="https://smsdash.example.com/webhooks/twilio/status",
        inbound_request_url="https://smsdash.example.com/webhooks/twilio/inbound",
    )
    fetched = service.fetch()
    assert fetched.status_callback == "https://smsdash.example.com/webhooks/twilio/status"
    assert fetched.inbound_request_url == "https://smsdash.example.com/webhooks/twilio/inbound"
    assert [s.sid for s in sdk.messaging.v1.services.list()] == [simulator.messaging_service_sid]
    [number] = sdk.incoming_phone_numbers.list(phone_number=simulator.from_number)
    number.update(sms_url="https://smsdash.example.com/webhooks/twilio/inbound")
    assert sdk.incoming_phone_numbers(number.sid).fetch().sms_url.endswith("/inbound")
    with pytest.raises(TwilioRestException) as info:
        sdk.messaging.v1.services("MG" + "0" * 32).fetch()
    assert info.value.status == 404


# -- callbacks --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("to", "final", "code"),
    [
        (OK_TO, "delivered", None),
        (TO_UNREACHABLE, "undelivered", "30003"),
        ("+15005550305", "undelivered", "30005"),
        ("+15005550306", "undelivered", "30006"),
        ("+15005550307", "undelivered", "30007"),
        (TO_FAILED, "failed", "30008"),
    ],
)
def test_callbacks_play_sent_then_the_numbers_outcome(
    sdk: Client, simulator: Simulator, to: str, final: str, code: str | None
) -> None:
    message = send(sdk, simulator, to=to)
    sent, last = simulator.flush_callbacks()
    assert statuses([sent, last]) == ["sent", final]
    assert sent.params == {
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "AccountSid": simulator.account_sid,
        "From": simulator.from_number,
        "To": to,
        "ApiVersion": "2010-04-01",
        "MessageStatus": "sent",
        "SmsStatus": "sent",
    }
    assert last.params.get("ErrorCode") == code
    assert re.fullmatch(r"\d{10}", last.params["RawDlrDoneDate"])
    assert last.request.url == CALLBACK and last.status_code == 204
    assert simulator.message(message.sid).status == final


def test_a_number_without_a_carrier_receipt_stays_sent(sdk: Client, simulator: Simulator) -> None:
    send(sdk, simulator, to=TO_NO_RECEIPT)
    assert statuses(simulator.flush_callbacks()) == ["sent"]


def test_callback_signatures_validate_with_the_auth_token_only(sdk: Client, simulator: Simulator) -> None:
    send(sdk, simulator)
    records = simulator.flush_callbacks()
    good, bad = RequestValidator(simulator.auth_token), RequestValidator("another-token")
    for record in records:
        signature = record.request.headers["X-Twilio-Signature"]
        assert good.validate(record.request.url, record.params, signature)
        assert not bad.validate(record.request.url, record.params, signature)
        assert not good.validate(record.request.url.replace("d=7", "d=8"), record.params, signature)


def test_messaging_service_sends_use_the_services_callback_and_name_it(sdk: Client, simulator: Simulator) -> None:
    service_callback = "https://smsdash.example.com/webhooks/twilio/status"
    sdk.messaging.v1.services(simulator.messaging_service_sid).update(status_callback=service_callback)
    message = sdk.messages.create(to=OK_TO, body="hi", messaging_service_sid=simulator.messaging_service_sid)
    assert message.status == "accepted" and message.messaging_service_sid == simulator.messaging_service_sid
    records = simulator.flush_callbacks()
    assert {r.request.url for r in records} == {service_callback}
    assert {r.params["MessagingServiceSid"] for r in records} == {simulator.messaging_service_sid}
    with pytest.raises(TwilioRestException) as info:
        sdk.messages.create(to=OK_TO, body="hi", messaging_service_sid="MG" + "0" * 32)
    assert info.value.code == 21701


def test_no_status_callback_means_no_callbacks_but_statuses_still_move(sdk: Client, simulator: Simulator) -> None:
    sid = sdk.messages.create(to=OK_TO, body="hi", from_=simulator.from_number).sid
    assert simulator.flush_callbacks() == []
    assert simulator.message(sid).status == "delivered"


# -- knobs ------------------------------------------------------------------------------------
def test_latency_knob_delays_every_answer(sdk: Client, simulator: Simulator) -> None:
    simulator.set_knobs(latency=0.3)
    started = time.monotonic()
    sdk.api.v2010.accounts(simulator.account_sid).fetch()
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(("knob", "status", "code"), [("error_429_rate", 429, 20429), ("error_500_rate", 500, 20500)])
def test_error_rate_knobs(sdk: Client, simulator: Simulator, knob: str, status: int, code: int) -> None:
    simulator.set_knobs(**{knob: 1.0})
    with pytest.raises(TwilioRestException) as info:
        send(sdk, simulator)
    assert (info.value.status, info.value.code) == (status, code)
    assert simulator.messages == []
    assert sdk.api.v2010.accounts(simulator.account_sid).fetch().type == "Full"  # scope "create"
    simulator.set_knobs(error_scope="all")
    with pytest.raises(TwilioRestException):
        sdk.api.v2010.accounts(simulator.account_sid).fetch()


def test_retry_after_knob_sets_the_header_of_429_answers_only(simulator: Simulator) -> None:
    url = f"{simulator.base_url}/2010-04-01/Accounts/{simulator.account_sid}/Messages.json"
    form = {"To": OK_TO, "From": simulator.from_number, "Body": "hello"}
    auth = (simulator.account_sid, simulator.auth_token)
    simulator.set_knobs(error_429_rate=1.0)
    assert "Retry-After" not in requests.post(url, data=form, auth=auth, timeout=5).headers  # 0: no header
    simulator.set_knobs(retry_after=1.5)
    answer = requests.post(url, data=form, auth=auth, timeout=5)
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "1.5")
    simulator.set_knobs(error_429_rate=0.0, error_500_rate=1.0)
    assert "Retry-After" not in requests.post(url, data=form, auth=auth, timeout=5).headers


def test_error_rate_is_a_share_of_requests(sdk: Client, simulator: Simulator) -> None:
    simulator.set_knobs(error_429_rate=0.5, seed=7)
    outcomes = []
    for _ in range(40):
        try:
            send(sdk, simulator)
            outcomes.append("ok")
        except TwilioRestException as exc:
            outcomes.append(str(exc.code))
    assert 8 <= outcomes.count("20429") <= 32 and outcomes.count("ok") == len(simulator.messages)


def test_timeout_after_accept_hang_records_the_message_and_the_client_times_out(simulator: Simulator) -> None:
    sdk = build_client({**simulator.client_config(), "TWILIO_READ_TIMEOUT": 0.3})
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(sdk, simulator)
    [message] = simulator.messages
    simulator.set_knobs(timeout_rate=0.0)
    assert [m.sid for m in sdk.messages.list(to=OK_TO)] == [message.sid]  # the double-send check finds it
    assert statuses(simulator.flush_callbacks()) == ["sent", "delivered"]


def test_timeout_after_accept_close_drops_the_connection(sdk: Client, simulator: Simulator) -> None:
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="close")
    with pytest.raises(requests.exceptions.ConnectionError):
        send(sdk, simulator)
    assert len(simulator.messages) == 1


def test_hang_seconds_bounds_the_hang_then_the_connection_drops(simulator: Simulator) -> None:
    sdk = build_client({**simulator.client_config(), "TWILIO_READ_TIMEOUT": 5.0})
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="hang", hang_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):
        send(sdk, simulator)
    assert 0.2 <= time.monotonic() - started < 5.0
    assert len(simulator.messages) == 1


def test_callback_jitter_spreads_delays_within_its_share() -> None:
    import random

    from smsdash.simulator.callbacks import CallbackPlayer

    rng = random.Random(3)
    delays = [CallbackPlayer._jittered(1.0, 0.25, rng) for _ in range(200)]
    assert all(0.75 <= d <= 1.25 for d in delays) and max(delays) - min(delays) > 0.3
    assert CallbackPlayer._jittered(1.0, 0.0, rng) == 1.0


def test_dropped_callbacks_leave_the_status_for_a_fetch(sdk: Client, simulator: Simulator) -> None:
    simulator.set_knobs(callback_drop_rate=1.0)
    sid = send(sdk, simulator, to=TO_FAILED).sid
    assert simulator.flush_callbacks() == []
    assert {r.outcome for r in simulator.callbacks} == {"dropped"}
    assert (sdk.messages(sid).fetch().status, sdk.messages(sid).fetch().error_code) == ("failed", 30008)


def test_reorder_knob_sends_the_final_callback_first(sdk: Client, simulator: Simulator) -> None:
    simulator.set_knobs(callback_reorder=True, callback_sent_delay=0.01, callback_final_delay=0.2)
    sid = send(sdk, simulator).sid
    assert statuses(simulator.flush_callbacks()) == ["delivered", "sent"]
    assert simulator.message(sid).status == "delivered"  # the late `sent` does not move it back


def test_repeat_knob_sends_every_callback_again(sdk: Client, simulator: Simulator) -> None:
    simulator.set_knobs(callback_repeat=2)
    send(sdk, simulator)
    assert statuses(simulator.flush_callbacks()) == ["sent"] * 3 + ["delivered"] * 3


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], str]] = []
    hosts: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append((self.path, dict(parse_qsl(body)), self.headers["X-Twilio-Signature"]))
        self.hosts.append(self.headers["Host"])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], str]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    _Receiver.hosts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    server.shutdown()
    server.server_close()


def test_real_http_callbacks_arrive_in_order_after_their_delays(
    sdk: Client, simulator: Simulator, receiver: Any
) -> None:
    base, received = receiver
    simulator.set_transport(HttpTransport())
    simulator.set_knobs(hold_callbacks=False, callback_sent_delay=0.05, callback_final_delay=0.3)
    url = f"{base}/webhooks/twilio/status?d=3"
    sid = send(sdk, simulator, to=TO_UNREACHABLE, status_callback=url).sid
    assert simulator.message(sid).status == "queued"
    records = simulator.wait_for_callbacks(2, timeout=5)
    assert [r.status_code for r in records] == [200, 200]
    assert [p["MessageStatus"] for _, p, _ in received] == ["sent", "undelivered"]
    validator = RequestValidator(simulator.auth_token)
    assert all(
        path == "/webhooks/twilio/status?d=3" and validator.validate(url, params, signature)
        for path, params, signature in received
    )


def test_callbacks_via_a_tunnel_reach_it_signed_over_the_public_url(
    sdk: Client, simulator: Simulator, receiver: Any
) -> None:
    """What ngrok or a router in front of the app does: the public URL is signed, loopback is called."""
    base, received = receiver
    simulator.set_transport(HttpTransport(via=base))
    simulator.set_knobs(hold_callbacks=False)
    send(sdk, simulator)  # StatusCallback https://smsdash.example.com/webhooks/twilio/status?d=7
    records = simulator.wait_for_callbacks(2, timeout=5)
    assert [(r.request.url, r.status_code) for r in records] == [(CALLBACK, 200)] * 2
    validator = RequestValidator(simulator.auth_token)
    assert [(path, validator.validate(CALLBACK, params, signature)) for path, params, signature in received] == [
        ("/webhooks/twilio/status?d=7", True)
    ] * 2
    assert _Receiver.hosts == ["smsdash.example.com"] * 2


def test_module_entry_sends_callbacks_via_the_tunnel_it_is_given(receiver: Any) -> None:
    base, received = receiver
    sid, token = "AC" + "ef" * 16, "via-token"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smsdash.simulator",
            "--port",
            "0",
            "--account-sid",
            sid,
            "--auth-token",
            token,
            "--callback-via",
            base,
            "--callback-sent-delay",
            "0",
            "--callback-final-delay",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert proc.stdout is not None
        sim_base = re.search(r"on (http://\S+)", proc.stdout.readline()).group(1)  # type: ignore[union-attr]
        client = build_client({"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token, "TWILIO_API_BASE_URL": sim_base})
        client.messages.create(to=OK_TO, from_="+15005550006", body="hello", status_callback=CALLBACK)
        deadline = time.monotonic() + 10
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        validator = RequestValidator(token)
        assert sorted(params["MessageStatus"] for _, params, _ in received) == ["delivered", "sent"]
        assert all(
            path == "/webhooks/twilio/status?d=7" and validator.validate(CALLBACK, params, signature)
            for path, params, signature in received
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_flask_transport_keeps_the_public_host_so_the_signature_validates(sdk: Client, simulator: Simulator) -> None:
    probe = Flask("probe")
    seen: list[bool] = []

    @probe.post("/webhooks/twilio/status")
    def status() -> tuple[str, int]:
        seen.append(
            RequestValidator(simulator.auth_token).validate(
                request.url, request.form, request.headers.get("X-Twilio-Signature", "")
            )
        )
        return "", 204

    simulator.set_transport(FlaskTransport(probe))
    send(sdk, simulator)
    assert [r.status_code for r in simulator.flush_callbacks()] == [204, 204]
    assert seen == [True, True]


def test_knobs_are_checked() -> None:
    with pytest.raises(KnobError):
        Knobs().updated({"no_such_knob": 1})
    with pytest.raises(KnobError):
        Knobs().updated({"error_429_rate": 1.5})
    with pytest.raises(KnobError):
        Knobs().updated({"timeout_mode": "sometimes"})
    assert Knobs().updated({"trial": "true", "verified_numbers": "+1555,+1666"}).verified_numbers == ("+1555", "+1666")


def test_control_endpoint_reads_and_sets_knobs(sdk: Client, simulator: Simulator) -> None:
    url = f"{simulator.base_url}/_sim/knobs"
    answer = requests.post(url, json={"error_429_rate": 1.0, "latency": 0.01}, timeout=5)
    assert answer.status_code == 200 and answer.json()["error_429_rate"] == 1.0
    assert simulator.knobs.error_429_rate == 1.0
    with pytest.raises(TwilioRestException):
        send(sdk, simulator)
    assert requests.post(url, json={"bogus": 1}, timeout=5).status_code == 400
    assert requests.get(url, timeout=5).json()["latency"] == 0.01
    send_ok = requests.post(f"{simulator.base_url}/_sim/reset", json={}, timeout=5)
    assert send_ok.status_code == 200 and simulator.knobs == Knobs()


def test_module_entry_serves_until_sigterm(tmp_path: Any) -> None:
    sid, token = "AC" + "ab" * 16, "cli-token"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smsdash.simulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--account-sid",
            sid,
            "--auth-token",
            token,
            "--trial",
            "--latency",
            "0.01",
            "--from-number",
            "+16502530000",
            "--messaging-service-sid",
            "MG" + "cd" * 16,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base = re.search(r"on (http://\S+)", line).group(1)  # type: ignore[union-attr]
        client = build_client({"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token, "TWILIO_API_BASE_URL": base})
        assert client.api.v2010.accounts(sid).fetch().type == "Trial"
        assert [n.phone_number for n in client.incoming_phone_numbers.list()] == ["+16502530000"]
        assert client.messaging.v1.services("MG" + "cd" * 16).fetch().friendly_name == "smsdash simulator"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_twilio_app_receives_the_simulators_callbacks_through_its_webhook(
    twilio_app: Flask, simulator: Simulator, make_delivery: Any
) -> None:
    from smsdash.twilio.messages_api import send_sms
    from smsdash.twilio.public_url import status_callback_url
    from tests.fixtures_webhooks import delivery_row

    delivery_id = make_delivery(to=TO_UNREACHABLE)
    with twilio_app.app_context():
        message = send_sms(TO_UNREACHABLE, "hello", status_callback_url(twilio_app.config, delivery_id))
    records = simulator.flush_callbacks()
    assert [(r.status, r.status_code is not None and r.status_code < 300) for r in records] == [
        ("sent", True),
        ("undelivered", True),
    ]
    row = delivery_row(twilio_app, delivery_id)
    assert (row.status, row.error_code, row.external_message_id) == ("undelivered", 30003, message.sid)


def test_inbound_replies_reach_the_apps_inbound_webhook_signed(
    twilio_app: Flask, simulator: Simulator, sdk: Client
) -> None:
    from smsdash.delivery.optouts import is_opted_out

    assert simulator.inbound("+16502530000", "STOP") is None  # no inbound URL configured yet
    inbound_url = "https://smsdash.example.com/webhooks/twilio/inbound"
    sdk.messaging.v1.services(simulator.messaging_service_sid).update(inbound_request_url=inbound_url)
    record = simulator.inbound("+16502530000", "STOP")
    assert record is not None and (record.request.url, record.status_code) == (inbound_url, 200)
    assert record.params["MessagingServiceSid"] == simulator.messaging_service_sid
    assert record.params["To"] == simulator.from_number and record.params["SmsStatus"] == "received"
    with twilio_app.app_context():
        assert is_opted_out("+16502530000", simulator.from_number)


def test_sim_inbound_endpoint_plays_an_mms_whose_media_need_the_accounts_credentials(
    simulator: Simulator, sdk: Client
) -> None:
    import requests

    sdk.incoming_phone_numbers.list()[0].update(sms_url="https://smsdash.example.com/webhooks/twilio/inbound")
    answer = requests.post(
        f"{simulator.base_url}/_sim/inbound",
        json={"from": "+16502530000", "body": "", "media": ["image/png", "text/vcard"]},
        timeout=5,
    )
    assert answer.status_code == 200
    [record] = simulator.callbacks
    params = record.params
    assert params["MessageSid"].startswith("MM") and params["NumMedia"] == "2"
    assert "MessagingServiceSid" not in params  # sent to the number's SmsUrl, not through the service
    assert [params["MediaContentType0"], params["MediaContentType1"]] == ["image/png", "text/vcard"]
    media_path = params["MediaUrl0"].removeprefix("https://api.twilio.com")
    assert requests.get(simulator.base_url + media_path, timeout=5).status_code == 401
    fetched = requests.get(
        simulator.base_url + media_path, auth=(simulator.account_sid, simulator.auth_token), timeout=5
    )
    assert (fetched.status_code, fetched.headers["Content-Type"]) == (200, "image/png")
