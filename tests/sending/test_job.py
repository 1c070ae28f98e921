"""Sending, end to end: compose, RQ jobs on a real Redis, the real twilio SDK against the simulator.

Each test composes (or runs the job directly when it must stop between two attempts), then runs
a real RQ SimpleWorker in burst mode in this process, which also runs scheduled retries that fall
due, and checks both sides: what the simulator received and what the database recorded.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from twilio.http.response import Response
from twilio.rest import Client

from smsdash.compose.service import Recipient, compose_message
from smsdash.delivery.optouts import record_opt_out
from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message, OptOut, PendingCallback, utcnow
from smsdash.sending import adopt, retry
from smsdash.sending import job as send_job
from smsdash.sending import queue as send_queue
from smsdash.simulator import Simulator
from smsdash.simulator.numbers import TO_BLOCKED, TO_INVALID
from smsdash.sms.phones import InvalidNumber, normalize
from smsdash.twilio.client import RedirectingHttpClient
from smsdash.worker.queue import get_queue
from smsdash.worker.runner import run_worker
from tests.fixtures_twilio import FlaskTransport

PUBLIC_BASE = "https://smsdash.example.com"
ALICE, BOB, CAROL = "+14155550101", "+14155550102", "+14155550103"


@pytest.fixture
def send_app(twilio_app: Flask) -> Flask:
    """The simulator-backed app with retry delays short enough for a test to wait them out."""
    twilio_app.config.update(
        SEND_RETRY_BASE_SECONDS=0.05, SEND_RETRY_MAX_SECONDS=0.2, SEND_MAX_ATTEMPTS=3, SEND_CONCURRENCY=8
    )
    return twilio_app


def compose(app: Flask, *numbers: str, body: str = "Hello from smsdash") -> int:
    with app.app_context():
        return compose_message(body, [Recipient(n) for n in numbers], author_id=None).id


def burst(app: Flask) -> None:
    """A real worker, in this process: works until the queue and the due retries are done."""
    with app.app_context():
        run_worker(app, burst=True)


def deliveries(app: Flask) -> list[Delivery]:
    with app.app_context():
        rows = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
        db.session.expunge_all()
        return list(rows)


def events(app: Flask, delivery_id: int) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        return [
            (e.event_type, e.source, e.detail)
            for e in db.session.scalars(select(Event).where(Event.delivery_id == delivery_id).order_by(Event.id))
        ]


def event_types(app: Flask, delivery_id: int) -> list[str]:
    return [kind for kind, _, _ in events(app, delivery_id)]


def run_job_once(app: Flask, delivery_id: int) -> dict[str, int]:
    """The send job for one delivery, run directly: the test then sees the state between attempts."""
    with app.app_context():
        return send_job.send_delivery(delivery_id)


def test_request_carries_to_from_body_and_a_callback_with_the_delivery_id(
    send_app: Flask, simulator: Simulator
) -> None:
    compose(send_app, ALICE, BOB)
    burst(send_app)
    rows = deliveries(send_app)
    assert [d.status for d in rows] == ["sent", "sent"]
    assert len(simulator.messages) == 2
    by_to = {m.to: m for m in simulator.messages}
    for delivery in rows:
        sent = by_to[delivery.to_number]
        assert sent.params["From"] == simulator.from_number
        assert "MessagingServiceSid" not in sent.params
        assert sent.params["Body"] == "Hello from smsdash"
        assert sent.params["StatusCallback"] == f"{PUBLIC_BASE}/webhooks/twilio/status?d={delivery.id}"
        assert delivery.external_message_id == sent.sid
        assert delivery.attempts == 1
        assert event_types(send_app, delivery.id) == ["sending", "sent"]
    with send_app.app_context():
        sent_event = db.session.scalars(select(Event).where(Event.event_type == "sent")).first()
        assert sent_event is not None and sent_event.source == "job"
        assert sent_event.payload["twilio_status"] == "queued"  # Twilio's own first status


def test_messaging_service_replaces_from(send_app: Flask, simulator: Simulator) -> None:
    send_app.config.update(TWILIO_MESSAGING_SERVICE_SID=simulator.messaging_service_sid, TWILIO_FROM_NUMBER="")
    compose(send_app, ALICE)
    burst(send_app)
    (sent,) = simulator.messages
    assert sent.params["MessagingServiceSid"] == simulator.messaging_service_sid
    assert "From" not in sent.params
    assert deliveries(send_app)[0].status == "sent"


def test_concurrent_sends_keep_each_sid_with_its_own_delivery(send_app: Flask, simulator: Simulator) -> None:
    simulator.set_knobs(latency=0.02)
    numbers = [f"+1415555{n:04d}" for n in range(200, 240)]
    compose(send_app, *numbers)
    burst(send_app)
    by_sid = {m.sid: m.to for m in simulator.messages}
    rows = deliveries(send_app)
    assert len(by_sid) == len(rows) == 40
    assert all(by_sid[d.external_message_id] == d.to_number for d in rows)


def test_invalid_number_fails_at_once_without_retry(send_app: Flask, simulator: Simulator) -> None:
    compose(send_app, TO_INVALID)
    burst(send_app)
    (delivery,) = deliveries(send_app)
    assert (delivery.status, delivery.error_code, delivery.attempts) == ("failed", 21211, 1)
    assert delivery.error_message
    assert event_types(send_app, delivery.id) == ["sending", "failed"]
    assert simulator.messages == []


def test_stop_reply_error_fails_and_records_the_opt_out(send_app: Flask, simulator: Simulator) -> None:
    compose(send_app, TO_BLOCKED)
    burst(send_app)
    (delivery,) = deliveries(send_app)
    assert (delivery.status, delivery.error_code, delivery.attempts) == ("failed", 21610, 1)
    with send_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OptOut).where(OptOut.phone == TO_BLOCKED)) == 1


def test_a_500_then_a_201_ends_sent_after_one_retry(send_app: Flask, simulator: Simulator) -> None:
    simulator.set_knobs(error_500_rate=1.0)
    compose(send_app, ALICE)
    (delivery,) = deliveries(send_app)
    assert run_job_once(send_app, delivery.id) == {"retry": 1}
    between = deliveries(send_app)[0]
    assert (between.status, between.attempts, between.external_message_id) == ("sending", 1, None)
    with send_app.app_context():
        assert ScheduledJobRegistry(queue=get_queue()).count == 1
    simulator.set_knobs(error_500_rate=0.0)
    burst(send_app)  # the queue is empty: only the scheduled retry keeps the burst going
    (after,) = deliveries(send_app)
    assert (after.status, after.attempts) == ("sent", 2)
    assert len(simulator.messages) == 1 and after.external_message_id == simulator.messages[0].sid
    assert event_types(send_app, after.id) == ["sending", "retry", "sending", "sent"]


def test_retry_event_says_when_the_next_attempt_falls_due(send_app: Flask, simulator: Simulator) -> None:
    # Delays long enough that "now" could never pass for the due time: backoff after one failure
    # is between half and all of the base, so 30 to 60 s.
    send_app.config.update(SEND_RETRY_BASE_SECONDS=60.0, SEND_RETRY_MAX_SECONDS=300.0)
    simulator.set_knobs(error_500_rate=1.0)
    compose(send_app, ALICE)
    (delivery,) = deliveries(send_app)
    before = utcnow()
    assert run_job_once(send_app, delivery.id) == {"retry": 1}
    after = utcnow()
    with send_app.app_context():
        (retry,) = db.session.scalars(
            select(Event).where(Event.delivery_id == delivery.id, Event.event_type == "retry")
        ).all()
        scheduled = ScheduledJobRegistry(queue=get_queue()).get_scheduled_time(f"send_d{delivery.id}_a1")
    assert retry.payload["may_have_reached_twilio"] is True
    assert (retry.payload["next_try"], retry.payload["max_tries"]) == (2, send_app.config["SEND_MAX_ATTEMPTS"])
    assert retry.payload["reason"] and retry.detail.startswith(retry.payload["reason"])  # type: ignore[union-attr]
    retry_at = datetime.fromisoformat(retry.payload["retry_at"])
    assert retry_at.utcoffset() == timedelta(0)
    assert before + timedelta(seconds=30) <= retry_at <= after + timedelta(seconds=60)
    # The same delay the detail states, and the time RQ will actually run the attempt.
    stated = float(re.search(r"in ([0-9.]+) s$", retry.detail or "").group(1))  # type: ignore[union-attr]
    assert abs((retry_at - retry.received_at).total_seconds() - stated) <= 0.1
    assert abs((retry_at - scheduled).total_seconds()) <= 1.0  # RQ keeps whole seconds


@pytest.mark.parametrize("mode", ["close", "hang"])
def test_a_timeout_after_twilio_accepted_does_not_send_twice(send_app: Flask, simulator: Simulator, mode: str) -> None:
    simulator.set_knobs(timeout_rate=1.0, timeout_mode=mode)
    compose(send_app, ALICE)
    (delivery,) = deliveries(send_app)
    assert run_job_once(send_app, delivery.id) == {"retry": 1}
    assert len(simulator.messages) == 1  # Twilio has it; we never heard back
    simulator.set_knobs(timeout_rate=0.0)
    burst(send_app)
    (after,) = deliveries(send_app)
    assert len(simulator.messages) == 1
    assert (after.status, after.external_message_id) == ("sent", simulator.messages[0].sid)
    sent = [detail for kind, _, detail in events(send_app, after.id) if kind == "sent"]
    assert sent and "adopted" in sent[0]


def test_a_callback_storing_the_sid_during_the_retrys_look_up_does_not_send_twice(
    send_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The retry has claimed the delivery (no SID yet) and asks Twilio's Messages list for the
    # timed-out attempt's message; meanwhile that message's callbacks store its SID on this very
    # delivery. The look-up must still take it as ours, not as "another delivery's".
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="close")
    compose(send_app, ALICE)
    (delivery,) = deliveries(send_app)
    assert run_job_once(send_app, delivery.id) == {"retry": 1}
    simulator.set_knobs(timeout_rate=0.0)
    pick = adopt._pick

    def callbacks_arrive_then_pick(*args: Any, **kwargs: Any) -> Any:
        if simulator.held_callbacks:  # Twilio's requests, on their own thread and transaction
            thread = threading.Thread(target=simulator.flush_callbacks)
            thread.start()
            thread.join(timeout=30)
        return pick(*args, **kwargs)

    monkeypatch.setattr(adopt, "_pick", callbacks_arrive_then_pick)
    burst(send_app)
    (after,) = deliveries(send_app)
    assert len(simulator.messages) == 1
    assert (after.status, after.external_message_id) == ("delivered", simulator.messages[0].sid)


def test_a_retry_that_finds_only_another_deliverys_message_asks_again_with_no_transaction_open(
    send_app: Flask, simulator: Simulator, twilio_in_transaction: Callable[[], list[str]]
) -> None:
    # Alice already has this text, from an earlier message. The new delivery's first attempt got a
    # 500, so its retry looks for it at Twilio first: the Messages list shows only the earlier
    # message, whose SID the database says is taken, so it lists again. That database read must
    # not leave a transaction open across the second request.
    compose(send_app, ALICE)
    burst(send_app)
    simulator.set_knobs(error_500_rate=1.0)
    compose(send_app, ALICE)
    _, second = deliveries(send_app)
    assert run_job_once(send_app, second.id) == {"retry": 1}
    simulator.set_knobs(error_500_rate=0.0)
    burst(send_app)
    assert len(simulator.messages) == 2
    assert [d.status for d in deliveries(send_app)] == ["sent", "sent"]
    assert twilio_in_transaction() == []


@pytest.mark.parametrize("ended_by", ["giving up", "an opt-out"])
def test_twilios_callbacks_overrule_a_local_end_after_a_timeout_that_reached_twilio(
    send_app: Flask, simulator: Simulator, ended_by: str
) -> None:
    # The attempt timed out after Twilio accepted it; the job then ended the delivery without
    # Twilio's word (no SID): it ran out of tries, or the recipient's STOP came in before the
    # retry. Twilio still sends the message and calls back with our delivery id: it was delivered.
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="close")
    compose(send_app, ALICE)
    (delivery,) = deliveries(send_app)
    if ended_by == "giving up":
        send_app.config["SEND_MAX_ATTEMPTS"] = 1
        assert run_job_once(send_app, delivery.id) == {"failed": 1}
    else:
        assert run_job_once(send_app, delivery.id) == {"retry": 1}
        with send_app.app_context():
            record_opt_out(ALICE, simulator.from_number, source="inbound")
            db.session.commit()
        burst(send_app)
    (ended,) = deliveries(send_app)
    assert (ended.status, ended.external_message_id) == ("failed" if ended_by == "giving up" else "canceled", None)
    simulator.flush_callbacks()
    (after,) = deliveries(send_app)
    assert len(simulator.messages) == 1
    assert (after.status, after.external_message_id) == ("delivered", simulator.messages[0].sid)
    assert (after.error_code, after.error_message, after.failed_at) == (None, None, None)
    assert after.sent_at is not None and after.delivered_at is not None
    assert not retry.can_retry(after)
    assert event_types(send_app, after.id)[-2:] == ["sent", "delivered"]


def deliver_held(app: Flask, simulator: Simulator, status: str) -> list[int]:
    """Twilio's held callbacks of `status` (the others stay held), delivered now from a thread of
    their own, as Twilio's requests come on their own connection and transaction; their answers."""
    simulator.settle()
    requests = [r for r in simulator.held_callbacks if r.params["MessageStatus"] == status]
    answers: list[int] = []
    thread = threading.Thread(target=lambda: answers.extend(FlaskTransport(app)(r) for r in requests))
    thread.start()
    thread.join(timeout=30)
    return answers


class SentCallbackThenAnswerLost(RedirectingHttpClient):
    """Twilio accepts the create and its `sent` callback (our delivery id in its URL) reaches the
    app; then the create's answer is lost (the simulator drops the connection)."""

    def __init__(self, app: Flask, simulator: Simulator) -> None:
        super().__init__(app.config["TWILIO_API_BASE_URL"], 2.0, 2.0, 8)
        self.app, self.simulator = app, simulator

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        try:
            return super().request(method, url, *args, **kwargs)
        except Exception:
            if method == "POST" and url.endswith("/Messages.json"):
                assert deliver_held(self.app, self.simulator, "sent") == [200]
            raise


def _answer_lost_after_sent(app: Flask, simulator: Simulator) -> None:
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="close")
    config = app.config
    app.extensions["smsdash_twilio_client"] = Client(
        config["TWILIO_ACCOUNT_SID"],
        config["TWILIO_AUTH_TOKEN"],
        http_client=SentCallbackThenAnswerLost(app, simulator),
    )


def test_a_last_try_whose_answer_was_lost_after_twilios_sent_callback_keeps_twilios_status(
    send_app: Flask, simulator: Simulator
) -> None:
    # Issue 12, item 2: the `sent` callback stored the SID while the create's answer was on its
    # way, then the answer was lost on the round's last try. "Gave up" is only the job's guess:
    # it must not write `failed` over Twilio's `sent`, or the `delivered` that follows is refused.
    send_app.config["SEND_MAX_ATTEMPTS"] = 1
    _answer_lost_after_sent(send_app, simulator)
    compose(send_app, ALICE)
    (delivery,) = deliveries(send_app)
    run_job_once(send_app, delivery.id)
    (sid,) = [m.sid for m in simulator.messages]
    (after_job,) = deliveries(send_app)
    assert (after_job.status, after_job.external_message_id, after_job.error_message) == ("sent", sid, None)
    simulator.flush_callbacks()
    (after,) = deliveries(send_app)
    assert (after.status, after.external_message_id, after.failed_at) == ("delivered", sid, None)
    assert not retry.can_retry(after)
    kinds = [(kind, source) for kind, source, _ in events(send_app, after.id)]
    assert kinds == [("sending", "job"), ("sent", "twilio"), ("failed", "job"), ("delivered", "twilio")]
    assert "Twilio" in events(send_app, after.id)[2][2]  # the job's failure says why it changed nothing
    assert len(simulator.messages) == 1


def test_an_opt_out_met_by_a_retry_does_not_cancel_a_message_twilio_already_reported(
    send_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first try timed out after Twilio accepted it; the recipient's STOP came in; the retry's
    # claim read the delivery (no SID), and then the first try's `sent` callback stored the SID.
    # The claim's cancel is a guess like the job's failure: Twilio has the message, its word stands.
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="close")
    compose(send_app, ALICE)
    (delivery,) = deliveries(send_app)
    assert run_job_once(send_app, delivery.id) == {"retry": 1}
    with send_app.app_context():
        record_opt_out(ALICE, simulator.from_number, source="inbound")
        db.session.commit()
    opted_out_among = send_job.opted_out_among

    def sent_callback_arrives_meanwhile(*args: Any, **kwargs: Any) -> set[str]:
        assert deliver_held(send_app, simulator, "sent") == [200]
        return opted_out_among(*args, **kwargs)

    monkeypatch.setattr(send_job, "opted_out_among", sent_callback_arrives_meanwhile)
    with send_app.app_context():
        assert send_job.run([send_job.Work(delivery.id, 1, 2, True)]) == {"opted_out": 1}
    (sid,) = [m.sid for m in simulator.messages]
    (after_claim,) = deliveries(send_app)
    assert (after_claim.status, after_claim.external_message_id) == ("sent", sid)
    simulator.flush_callbacks()
    (after,) = deliveries(send_app)
    assert (after.status, after.external_message_id) == ("delivered", sid)
    assert len(simulator.messages) == 1


class SidTakenMeanwhile(RedirectingHttpClient):
    """Twilio answers a create to `to`; before the job records it, another delivery (`holder`)
    stores that message's SID, as a look-up that adopted the wrong message would."""

    def __init__(self, app: Flask, to: str, holder: int) -> None:
        super().__init__(app.config["TWILIO_API_BASE_URL"], 2.0, 2.0, 8)
        self.app, self.to, self.holder = app, to, holder

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        response = super().request(method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/Messages.json") and (kwargs.get("data") or {}).get("To") == self.to:
            with self.app.app_context():  # its own session and transaction
                sid = json.loads(response.text)["sid"]
                db.session.execute(update(Delivery).where(Delivery.id == self.holder).values(external_message_id=sid))
                db.session.commit()
        return response


def test_a_sid_another_delivery_holds_costs_the_jobs_round_nothing_else(
    send_app: Flask, simulator: Simulator, make_delivery: Callable[..., int], caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 12, item 7: the unique SID used to roll back the whole commit round, outcomes Twilio
    # had accepted included. Now only the clash is handled: ALICE's delivery is `sent` without
    # the SID (Twilio did create it for her), BOB's outcome is committed as usual.
    holder = make_delivery(to=CAROL, status="sent")
    config = send_app.config
    send_app.extensions["smsdash_twilio_client"] = Client(
        config["TWILIO_ACCOUNT_SID"],
        config["TWILIO_AUTH_TOKEN"],
        http_client=SidTakenMeanwhile(send_app, ALICE, holder),
    )
    compose(send_app, ALICE, BOB)
    _, alice, bob = deliveries(send_app)
    with send_app.app_context(), caplog.at_level(logging.WARNING, logger="smsdash"):
        assert send_job.send_batch([alice.id, bob.id]) == {"sent": 2}
    sids = {m.to: m.sid for m in simulator.messages}
    rows = {d.id: d for d in deliveries(send_app)}
    assert (rows[alice.id].status, rows[alice.id].external_message_id) == ("sent", None)
    assert (rows[bob.id].status, rows[bob.id].external_message_id) == ("sent", sids[BOB])
    assert rows[holder].external_message_id == sids[ALICE]
    assert any(f"delivery {alice.id}" in m and f"delivery {holder}" in m for m in caplog.messages), caplog.messages
    simulator.flush_callbacks()  # ALICE's callbacks carry her delivery id: they still reach her
    assert {d.id: d.status for d in deliveries(send_app)} == {
        alice.id: "delivered",
        bob.id: "delivered",
        holder: "sent",
    }
    assert len(simulator.messages) == 2


def test_a_timeout_through_a_smart_encoding_service_adopts_the_rewritten_body_instead_of_sending_twice(
    send_app: Flask, simulator: Simulator
) -> None:
    # Twilio stores the GSM-7 rewrite of a Messaging Service's body, so the look-up after the
    # timeout sees '"Hi" - see you at 5' where we sent curly quotes, an em dash and a no-break space.
    send_app.config.update(TWILIO_MESSAGING_SERVICE_SID=simulator.messaging_service_sid, TWILIO_FROM_NUMBER="")
    simulator.set_knobs(smart_encoding=True, timeout_rate=1.0, timeout_mode="close")
    body = "\u201cHi\u201d \u2014 see you at\u00a05"
    compose(send_app, ALICE, body=body)
    (delivery,) = deliveries(send_app)
    assert run_job_once(send_app, delivery.id) == {"retry": 1}
    (stored,) = simulator.messages
    assert (stored.params["Body"], stored.body) == (body, '"Hi" - see you at 5')
    simulator.set_knobs(timeout_rate=0.0)
    burst(send_app)
    (after,) = deliveries(send_app)
    assert len(simulator.messages) == 1
    assert (after.status, after.external_message_id) == ("sent", stored.sid)
    sent = [detail for kind, _, detail in events(send_app, after.id) if kind == "sent"]
    assert sent and "adopted" in sent[0]


def test_transient_errors_give_up_after_max_attempts_and_retry_button_starts_over(
    send_app: Flask, simulator: Simulator
) -> None:
    simulator.set_knobs(error_500_rate=1.0)
    compose(send_app, ALICE)
    burst(send_app)
    (delivery,) = deliveries(send_app)
    assert (delivery.status, delivery.attempts, delivery.error_code) == ("failed", 3, 20500)
    assert event_types(send_app, delivery.id) == ["sending", "retry", "sending", "retry", "sending", "failed"]
    assert retry.can_retry(delivery)

    simulator.set_knobs(error_500_rate=0.0)
    with send_app.app_context():
        assert retry.retry_delivery(delivery.id) is True
    burst(send_app)
    (after,) = deliveries(send_app)
    assert (after.status, after.attempts, after.error_code) == ("sent", 4, None)
    assert event_types(send_app, after.id)[-3:] == ["queued", "sending", "sent"]
    with send_app.app_context():
        assert retry.retry_delivery(after.id) is False  # a sent delivery is never re-sent
    assert len(simulator.messages) == 1


def test_retry_button_after_a_last_attempt_that_timed_out_adopts_what_twilio_has(
    send_app: Flask, simulator: Simulator
) -> None:
    send_app.config["SEND_MAX_ATTEMPTS"] = 1
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="close")
    compose(send_app, ALICE)
    burst(send_app)
    (delivery,) = deliveries(send_app)
    assert (delivery.status, delivery.external_message_id) == ("failed", None)
    assert len(simulator.messages) == 1  # Twilio has it; we never heard back
    assert retry.can_retry(delivery)

    simulator.set_knobs(timeout_rate=0.0)
    with send_app.app_context():
        assert retry.retry_delivery(delivery.id) is True
    burst(send_app)
    (after,) = deliveries(send_app)
    assert len(simulator.messages) == 1
    assert (after.status, after.external_message_id) == ("sent", simulator.messages[0].sid)


def test_opted_out_numbers_are_never_sent(send_app: Flask, simulator: Simulator) -> None:
    with send_app.app_context():
        record_opt_out(ALICE, "", source="test")
        db.session.commit()
    compose(send_app, ALICE, BOB)
    with send_app.app_context():  # BOB replies STOP after compose, before the job runs
        record_opt_out(BOB, simulator.from_number, source="test")
        db.session.commit()
    burst(send_app)
    assert simulator.messages == []
    alice, bob = deliveries(send_app)
    assert (alice.status, bob.status) == ("canceled", "canceled")
    assert "opted out" in events(send_app, alice.id)[0][2]
    assert "opted out" in events(send_app, bob.id)[0][2]


def test_a_job_run_twice_sends_once(send_app: Flask, simulator: Simulator) -> None:
    compose(send_app, ALICE)
    (delivery,) = deliveries(send_app)
    with send_app.app_context():  # the same job enqueued again, as a sweeper or a redelivery would
        get_queue().enqueue("smsdash.send_job.send_batch", [delivery.id])
    burst(send_app)
    assert run_job_once(send_app, delivery.id) == {"skipped": 1}
    assert len(simulator.messages) == 1
    (after,) = deliveries(send_app)
    assert (after.status, after.attempts) == ("sent", 1)
    assert event_types(send_app, after.id).count("sent") == 1
    assert "already" in events(send_app, after.id)[-1][2]


class CallbacksBeforeResponse(RedirectingHttpClient):
    """Twilio at its fastest: every status callback reaches the app before the create's response."""

    def __init__(self, simulator: Simulator, config: dict[str, Any]) -> None:
        super().__init__(config["TWILIO_API_BASE_URL"], 2.0, 2.0, 8)
        self.simulator = simulator

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        response = super().request(method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/Messages.json"):
            self.simulator.flush_callbacks()
        return response


def test_a_callback_that_beat_the_job_is_not_undone(send_app: Flask, simulator: Simulator) -> None:
    config = dict(send_app.config)
    send_app.extensions["smsdash_twilio_client"] = Client(
        config["TWILIO_ACCOUNT_SID"],
        config["TWILIO_AUTH_TOKEN"],
        http_client=CallbacksBeforeResponse(simulator, config),
    )
    compose(send_app, ALICE)
    burst(send_app)
    (delivery,) = deliveries(send_app)
    assert delivery.status == "delivered"
    assert delivery.external_message_id == simulator.messages[0].sid
    steps = [(kind, source) for kind, source, _ in events(send_app, delivery.id)]
    # Twilio's callbacks came first; the job's `sent` is kept last, as history, moving nothing.
    assert steps.index(("delivered", "twilio")) < steps.index(("sent", "job"))


def test_callbacks_without_our_delivery_id_wait_in_the_inbox_until_the_job_stores_the_sid(
    send_app: Flask, simulator: Simulator
) -> None:
    # A Messaging Service's own status callback URL carries no delivery id, and here it fires
    # before the job has stored the SID: the webhook keeps it pending, the job applies it.
    config = dict(
        send_app.config,
        TWILIO_MESSAGING_SERVICE_SID=simulator.messaging_service_sid,
        TWILIO_FROM_NUMBER="",
        BASE_HOST_URL="",
    )
    send_app.config.update(config)
    client = Client(
        config["TWILIO_ACCOUNT_SID"],
        config["TWILIO_AUTH_TOKEN"],
        http_client=CallbacksBeforeResponse(simulator, config),
    )
    client.messaging.v1.services(simulator.messaging_service_sid).update(
        status_callback=f"{PUBLIC_BASE}/webhooks/twilio/status"
    )
    send_app.extensions["smsdash_twilio_client"] = client
    compose(send_app, ALICE)
    burst(send_app)
    (delivery,) = deliveries(send_app)
    assert "StatusCallback" not in simulator.messages[0].params
    assert (delivery.status, delivery.external_message_id) == ("delivered", simulator.messages[0].sid)
    with send_app.app_context():
        assert (
            db.session.scalar(
                select(func.count()).select_from(PendingCallback).where(PendingCallback.applied_at.is_(None))
            )
            == 0
        )


def test_redis_down_during_compose_then_every_delivery_sent_once(send_app: Flask, simulator: Simulator) -> None:
    live_redis = (send_app.config["REDIS_URL"], send_app.extensions["smsdash_redis"])
    send_app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    send_app.extensions["smsdash_redis"] = None
    message_id = compose(send_app, ALICE, BOB, CAROL)
    send_app.config["REDIS_URL"], send_app.extensions["smsdash_redis"] = live_redis

    rows = deliveries(send_app)
    assert [(d.message_id, d.status, d.enqueued_at) for d in rows] == [(message_id, "queued", None)] * 3
    send_app.config["SEND_SWEEP_GRACE_SECONDS"] = 0
    burst(send_app)  # the worker's scheduler runs the sweeper, which enqueues them
    rows = deliveries(send_app)
    assert all(d.status == "sent" and d.enqueued_at is not None for d in rows)
    assert sorted(m.to for m in simulator.messages) == [ALICE, BOB, CAROL]
    burst(send_app)  # a second sweep finds nothing to do
    assert len(simulator.messages) == 3


def test_rate_limit_keeps_every_one_second_window_at_or_under_the_rate(send_app: Flask, simulator: Simulator) -> None:
    send_app.config.update(SEND_RATE_PER_SECOND=10, SEND_CONCURRENCY=16)
    compose(send_app, *[f"+1415555{n:04d}" for n in range(300, 325)])
    burst(send_app)
    times = sorted(m.date_created.timestamp() for m in simulator.messages)
    assert len(times) == 25
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 10
    with send_app.app_context():  # paced jobs stay short: about 10 s of sends each
        assert send_queue.batch_size() == 100
    assert times[-1] - times[0] >= 2.0  # paced, not refused: all 25 went out


def test_unreachable_callback_base_still_sends_and_says_so(send_app: Flask, simulator: Simulator) -> None:
    send_app.config["BASE_HOST_URL"] = "http://localhost:5000"
    compose(send_app, ALICE)
    burst(send_app)
    (delivery,) = deliveries(send_app)
    assert delivery.status == "sent"
    assert (
        simulator.messages[0].params["StatusCallback"]
        == f"http://localhost:5000/webhooks/twilio/status?d={delivery.id}"
    )
    notices = [detail for kind, _, detail in events(send_app, delivery.id) if kind == "notice"]
    assert len(notices) == 1 and "localhost" in notices[0]


def test_compose_dedupes_and_enqueues_in_batches_of_whole_pool_waves(send_app: Flask) -> None:
    send_app.config.update(SEND_BATCH_SIZE=3, SEND_CONCURRENCY=2)  # batches round up to 4
    numbers = [f"+1415555{n:04d}" for n in range(400, 410)]
    message_id = compose(send_app, *numbers, numbers[0])
    with send_app.app_context():
        assert db.session.get(Message, message_id).recipient_count == 10
        jobs = get_queue().get_jobs()
        assert sorted(len(job.args[0]) for job in jobs) == [2, 4, 4]
        assert all(job.id.startswith("send_") for job in jobs)
    assert all(d.enqueued_at is not None for d in deliveries(send_app))


def test_sms_send_cli_normalises_numbers_and_prints_the_message_id(send_app: Flask) -> None:
    result = send_app.test_cli_runner().invoke(
        args=["sms", "send", "--to", "+1 (415) 555-0101", "--to", "4155550102", "--body", "Hi"]
    )
    assert result.exit_code == 0, result.output
    message_id = int(result.stdout.strip())
    rows = deliveries(send_app)
    assert [(d.message_id, d.to_number) for d in rows] == [(message_id, ALICE), (message_id, BOB)]


def test_sms_send_cli_names_every_bad_number_and_creates_nothing(send_app: Flask) -> None:
    result = send_app.test_cli_runner().invoke(
        args=["sms", "send", "--to", "12", "--to", "4155550101", "--to", "not-a-number", "--body", "Hi"]
    )
    assert result.exit_code != 0
    assert "'12'" in result.output and "'not-a-number'" in result.output
    too_long = send_app.test_cli_runner().invoke(args=["sms", "send", "--to", "4155550101", "--body", "x" * 1601])
    assert too_long.exit_code != 0 and "1600" in too_long.output
    with send_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message)) == 0


def test_phone_normalisation_accepts_formatted_and_national_numbers() -> None:
    assert normalize("+1 (415) 555-0101") == ALICE
    assert normalize("4155550101", "US") == ALICE
    with pytest.raises(InvalidNumber):
        normalize("555-0101", "US")


def test_a_callback_parked_while_the_job_commits_its_sid_is_still_applied(
    send_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Messaging Service callback (no delivery id) arrives after the job looked for waiting
    # callbacks but before it committed the SID: the webhook parks it and finds no delivery with
    # that SID yet, and the job, which already looked, never sees it. PostgreSQL only: SQLite
    # lets one writer at a time, so there the webhook waits for the job's commit.
    with send_app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite serialises writers: the webhook cannot park a callback mid-commit")
    from tests.fixtures_webhooks import callback_params, sign

    path = "/webhooks/twilio/status"
    looked = send_job._apply_waiting_callbacks

    def look_then_callback_arrives(accepted: list[tuple[int, str]]) -> None:
        looked(accepted)
        for _, sid in accepted:
            params = callback_params(sid, "delivered", To=ALICE)
            answers: list[int] = []

            def post(params: dict[str, str] = params, answers: list[int] = answers) -> None:
                # Twilio's request, on its own connection and transaction
                with send_app.app_context():
                    answers.append(
                        send_app.test_client()
                        .post(
                            path,
                            data=params,
                            headers={"X-Twilio-Signature": sign(PUBLIC_BASE + path, params, simulator.auth_token)},
                        )
                        .status_code
                    )
                    db.session.remove()

            thread = threading.Thread(target=post)
            thread.start()
            thread.join(timeout=30)
            assert answers == [200]

    monkeypatch.setattr(send_job, "_apply_waiting_callbacks", look_then_callback_arrives)
    compose(send_app, ALICE)
    burst(send_app)
    (delivery,) = deliveries(send_app)
    assert (delivery.status, delivery.external_message_id) == ("delivered", simulator.messages[0].sid)
    with send_app.app_context():
        assert (
            db.session.scalar(
                select(func.count()).select_from(PendingCallback).where(PendingCallback.applied_at.is_(None))
            )
            == 0
        )


def test_a_first_attempt_whose_job_hit_a_database_error_is_still_sent(
    send_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database went away while the job claimed its batch (a restart, a failover): the claim
    # rolled back, so the deliveries are still `queued` and already marked enqueued, which
    # nothing else looks at. The job itself must run again.
    claim = send_job._claim
    blips: list[int] = []

    def claim_after_a_blip(*args: Any, **kwargs: Any) -> Any:
        if not blips:
            blips.append(1)
            raise OperationalError("UPDATE comms_deliveries ...", {}, Exception("server closed the connection"))
        return claim(*args, **kwargs)

    monkeypatch.setattr(send_job, "_claim", claim_after_a_blip)
    compose(send_app, ALICE, BOB)
    burst(send_app)
    assert blips == [1]
    assert [d.status for d in deliveries(send_app)] == ["sent", "sent"]
    assert len(simulator.messages) == 2


def test_two_retries_finding_the_same_message_at_twilio_neither_crash_nor_send_twice(
    send_app: Flask, simulator: Simulator
) -> None:
    # The same text to the same number in two messages, both first attempts timed out after
    # Twilio accepted them: the two retries, in one batch, look Twilio up at the same time and
    # both see the same message first. One adopts it; the other must not break the batch on the
    # unique SID, and its next look finds the other message.
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="close")
    compose(send_app, ALICE)
    compose(send_app, ALICE)
    first, second = deliveries(send_app)
    for delivery in (first, second):
        assert run_job_once(send_app, delivery.id) == {"retry": 1}
    simulator.set_knobs(timeout_rate=0.0)
    with send_app.app_context():
        counts = send_job.run([send_job.Work(d.id, 1, 2, True) for d in (first, second)])
    assert counts == {"adopted": 1, "retry": 1}
    burst(send_app)
    assert len(simulator.messages) == 2
    rows = deliveries(send_app)
    assert [d.status for d in rows] == ["sent", "sent"]
    assert {d.external_message_id for d in rows} == {m.sid for m in simulator.messages}
