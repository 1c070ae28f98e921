"""The reconciler and stuck-work recovery, against the Twilio simulator, with a real DB and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from smsdash.compose.service import Recipient, compose_message
from smsdash.delivery.optouts import is_opted_out
from smsdash.extensions import db
from smsdash.models import Delivery, Event, utcnow
from smsdash.redis_conn import get_redis, shareable_url
from smsdash.sending import job as send_job
from smsdash.sending import queue as send_queue
from smsdash.sending import reconciler
from smsdash.sending.job import send_batch
from smsdash.sending.reconciler import LOCK_KEY, interval_seconds, reconcile
from smsdash.sending.retry import can_retry, retry_delivery
from smsdash.simulator import Simulator
from smsdash.simulator.numbers import TO_FAILED, TO_NO_RECEIPT, TO_UNREACHABLE
from smsdash.twilio.client import get_client
from smsdash.worker import heartbeat
from smsdash.worker.queue import QUEUE_NAME, get_queue
from smsdash.worker.runner import AppWorker, run_worker

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DELIVERED_TO = "+14155550101"
BODY = "Reconcile me"


def _send(app: Flask, numbers: list[str]) -> tuple[int, dict[str, int]]:
    """Compose to `numbers` and run the send job in process; (message id, delivery id by number)."""
    with app.app_context():
        message_id = compose_message(BODY, [Recipient(n) for n in numbers], author_id=None).id
        rows = db.session.execute(
            select(Delivery.id, Delivery.to_number).where(Delivery.message_id == message_id)
        ).all()
        send_batch([r.id for r in rows])
        return message_id, {r.to_number: r.id for r in rows}


def _deliveries(app: Flask, message_id: int) -> dict[str, Delivery]:
    with app.app_context():
        rows = db.session.scalars(select(Delivery).where(Delivery.message_id == message_id)).all()
        for row in rows:
            db.session.expunge(row)
        return {d.to_number: d for d in rows}


def _external_events(app: Flask, delivery_id: int) -> Counter[tuple[str, str]]:
    with app.app_context():
        return Counter(
            (row.event_type, row.source)
            for row in db.session.execute(
                select(Event.event_type, Event.source).where(
                    Event.delivery_id == delivery_id, Event.source.in_(["twilio", "reconciler"])
                )
            )
        )


def _age(app: Flask, delivery_ids: list[int], seconds: float) -> None:
    """Make deliveries look `seconds` older, as if the clock had moved on since their last change."""
    with app.app_context():
        earlier = utcnow() - timedelta(seconds=seconds)
        db.session.execute(
            update(Delivery).where(Delivery.id.in_(delivery_ids)).values(updated_at=earlier, created_at=earlier)
        )
        db.session.commit()


def test_with_callbacks_dropped_the_reconciler_brings_every_delivery_to_its_final_state(
    twilio_app: Flask, simulator: Simulator
) -> None:
    simulator.set_knobs(callback_drop_rate=1.0)
    message_id, ids = _send(twilio_app, [DELIVERED_TO, TO_UNREACHABLE, TO_FAILED])
    simulator.flush_callbacks()  # every callback is dropped: the app hears nothing
    assert {d.status for d in _deliveries(twilio_app, message_id).values()} == {"sent"}

    report = reconcile(twilio_app, message_id=message_id)

    after = _deliveries(twilio_app, message_id)
    assert after[DELIVERED_TO].status == "delivered"
    assert (after[TO_UNREACHABLE].status, after[TO_UNREACHABLE].error_code) == ("undelivered", 30003)
    assert "unreachable" in (after[TO_UNREACHABLE].error_message or "")
    assert (after[TO_FAILED].status, after[TO_FAILED].error_code) == ("failed", 30008)
    assert report.checked == 3 and len(report.changes) == 3 and not report.errors
    for number, final in [(DELIVERED_TO, "delivered"), (TO_UNREACHABLE, "undelivered"), (TO_FAILED, "failed")]:
        assert _external_events(twilio_app, ids[number]) == Counter({(final, "reconciler"): 1})


def test_a_late_callback_after_the_reconciler_adds_no_duplicate_event(twilio_app: Flask, simulator: Simulator) -> None:
    message_id, ids = _send(twilio_app, [DELIVERED_TO, TO_UNREACHABLE])
    simulator.settle()  # Twilio knows the outcome; its callbacks are still on their way (held)
    reconcile(twilio_app, message_id=message_id)
    assert _deliveries(twilio_app, message_id)[DELIVERED_TO].status == "delivered"

    records = simulator.flush_callbacks()  # the late callbacks: sent, then the final status
    assert records and all(r.status_code == 200 for r in records)

    after = _deliveries(twilio_app, message_id)
    assert (after[DELIVERED_TO].status, after[TO_UNREACHABLE].status) == ("delivered", "undelivered")
    for number, final in [(DELIVERED_TO, "delivered"), (TO_UNREACHABLE, "undelivered")]:
        events = _external_events(twilio_app, ids[number])
        assert events[(final, "reconciler")] == 1
        assert events[(final, "twilio")] == 0  # the same observation, not recorded twice
        assert events[("sent", "twilio")] == 1  # news the reconciler did not have is kept


def test_only_deliveries_past_their_age_are_fetched_and_rechecks_back_off(
    twilio_app: Flask, simulator: Simulator
) -> None:
    message_id, ids = _send(twilio_app, [DELIVERED_TO, TO_NO_RECEIPT, TO_UNREACHABLE])
    simulator.settle()
    _age(twilio_app, [ids[DELIVERED_TO], ids[TO_NO_RECEIPT]], 11 * 60)  # `sent` for 11 min

    report = reconcile(twilio_app)
    assert report.checked == 2
    after = _deliveries(twilio_app, message_id)
    assert after[DELIVERED_TO].status == "delivered"
    assert after[TO_UNREACHABLE].status == "sent"  # 0 s old: its callback may still come
    assert after[TO_NO_RECEIPT].status == "sent"  # Twilio has no receipt either
    assert after[TO_NO_RECEIPT].reconcile_after is not None
    assert after[TO_NO_RECEIPT].reconcile_after > utcnow() + timedelta(minutes=4)

    assert reconcile(twilio_app).checked == 0  # the no-receipt message is not fetched every run


def test_without_a_public_url_recent_deliveries_are_reconciled_within_seconds(
    twilio_app: Flask, simulator: Simulator
) -> None:
    assert interval_seconds(twilio_app.config) == 60  # callbacks can arrive: the slow schedule
    twilio_app.config["BASE_HOST_URL"] = "http://127.0.0.1:5000"  # callbacks cannot arrive here
    assert interval_seconds(twilio_app.config) == 5  # the worker runs it every 5 s
    twilio_app.config["RECONCILE_LOCAL_INTERVAL_SECONDS"] = 0  # and 5 s of age is enough; here, none
    message_id, _ = _send(twilio_app, [DELIVERED_TO])
    simulator.settle()
    reconcile(twilio_app)
    assert _deliveries(twilio_app, message_id)[DELIVERED_TO].status == "delivered"


def test_sms_reconcile_command_prints_what_it_changed(twilio_app: Flask, simulator: Simulator) -> None:
    message_id, ids = _send(twilio_app, [DELIVERED_TO, TO_UNREACHABLE])
    simulator.settle()
    result = twilio_app.test_cli_runner().invoke(args=["sms", "reconcile", "--message", str(message_id)])
    assert result.exit_code == 0, result.output
    assert f"delivery {ids[DELIVERED_TO]} to {DELIVERED_TO}: sent -> delivered (fetched from Twilio)" in result.output
    assert f"delivery {ids[TO_UNREACHABLE]} to {TO_UNREACHABLE}: sent -> undelivered (30003:" in result.output
    assert "checked 2 deliveries, changed 2." in result.output
    again = twilio_app.test_cli_runner().invoke(args=["sms", "reconcile", "--message", str(message_id)])
    assert "checked 0 deliveries, changed 0." in again.output
    missing = twilio_app.test_cli_runner().invoke(args=["sms", "reconcile", "--message", "999999"])
    assert missing.exit_code == 1 and "no message 999999" in missing.output


def test_callbacks_posted_while_the_reconciler_waits_for_twilio_are_answered_without_waiting(
    twilio_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No transaction stays open while Twilio answers a fetch. The reconciler has applied the first
    delivery's status and is waiting for Twilio's answer about the second when Twilio's callbacks
    arrive, for those two deliveries and an unrelated one: each is answered while that fetch is
    still in flight. (A write transaction held across the fetch locks the whole database on SQLite,
    so a callback waits out the busy timeout and gets a 500, and the rows it wrote on PostgreSQL,
    past Twilio's 15 s webhook timeout; Twilio does not retry either.)"""
    message_id, ids = _send(twilio_app, [DELIVERED_TO, TO_UNREACHABLE])
    _send(twilio_app, ["+14155550102"])  # the unrelated delivery
    simulator.settle()  # Twilio knows every outcome; its callbacks are held for now
    second = _deliveries(twilio_app, message_id)[TO_UNREACHABLE].external_message_id or ""
    assert ids[DELIVERED_TO] < ids[TO_UNREACHABLE]  # the reconciler fetches in id order

    # Twilio is slow to answer the second fetch: the request waits, on its way to the simulator,
    # until the test has delivered the callbacks (at most 5 s).
    http = get_client(twilio_app).http_client
    forward = http.request
    fetching, answered, release = threading.Event(), threading.Event(), threading.Event()

    def slow_second_fetch(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if second not in url:
            return forward(method, url, *args, **kwargs)
        fetching.set()
        release.wait(5)
        try:
            return forward(method, url, *args, **kwargs)
        finally:
            answered.set()

    monkeypatch.setattr(http, "request", slow_second_fetch)
    reports: list[Any] = []
    run = threading.Thread(target=lambda: reports.append(reconcile(twilio_app, message_id=message_id)))
    run.start()
    try:
        assert fetching.wait(30), "the reconciler never fetched the second delivery"
        records = simulator.flush_callbacks()
        during_the_fetch = not answered.is_set()
    finally:
        release.set()
        run.join(30)

    assert [r.status_code for r in records] == [200] * 6, [(r.status_code, r.error) for r in records]
    assert during_the_fetch, "the callbacks waited for the reconciler's Twilio fetch"
    [report] = reports
    assert report.checked == 2 and not report.errors
    after = _deliveries(twilio_app, message_id)
    assert (after[DELIVERED_TO].status, after[TO_UNREACHABLE].status) == ("delivered", "undelivered")


# -- stuck work ---------------------------------------------------------------------------------


def _stuck(app: Flask, number: str, age: float = 600) -> int:
    """A delivery its worker claimed (`sending`, one attempt) and never finished, `age` s ago."""
    with app.app_context():
        message = compose_message(BODY, [Recipient(number)], author_id=None)
        delivery_id = db.session.scalar(select(Delivery.id).where(Delivery.message_id == message.id))
    return _die_mid_send(app, delivery_id, age)


def _die_mid_send(app: Flask, delivery_id: int, age: float = 600) -> int:
    """The queued first attempt of `delivery_id` claimed by the send job, whose worker then died
    before calling Twilio, `age` s ago: the claim (and its `sending` event) is all that is left."""
    with app.app_context():
        get_redis(app).delete(f"rq:queue:{QUEUE_NAME}")  # the dead worker's job is gone
        send_job._claim([send_job.Work(delivery_id)], {})
    _age(app, [delivery_id], age)
    return delivery_id


def _job_details_after_recovery(app: Flask, delivery_id: int) -> list[tuple[str, str | None]]:
    """(type, detail) of the job's events after the reconciler's re-send was enqueued."""
    with app.app_context():
        rows = db.session.execute(
            select(Event.event_type, Event.source, Event.detail)
            .where(Event.delivery_id == delivery_id)
            .order_by(Event.id)
        ).all()
    start = max(i for i, r in enumerate(rows) if (r.event_type, r.source) == ("retry", "reconciler"))
    return [(r.event_type, r.detail) for r in rows[start + 1 :]]


def _creates_to(simulator: Simulator, number: str) -> int:
    return sum(m.to == number for m in simulator.messages)


def test_stuck_delivery_twilio_already_has_is_adopted_not_resent(twilio_app: Flask, simulator: Simulator) -> None:
    delivery_id = _stuck(twilio_app, DELIVERED_TO)
    with twilio_app.app_context():  # the dead worker's request did reach Twilio
        sid = get_client().messages.create(to=DELIVERED_TO, from_=simulator.from_number, body=BODY).sid
    simulator.settle()  # and it has been delivered since

    report = reconcile(twilio_app)

    with twilio_app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        assert delivery.external_message_id == sid
        assert delivery.status == "delivered"  # adopted, then brought up to date
    assert _creates_to(simulator, DELIVERED_TO) == 1
    assert str(report.changes[0]) == f"delivery {delivery_id} to {DELIVERED_TO}: sending -> sent (adopted {sid})"


def test_stuck_delivery_twilio_never_saw_is_sent_again_once(twilio_app: Flask, simulator: Simulator) -> None:
    delivery_id = _stuck(twilio_app, DELIVERED_TO)
    young_id = _stuck(twilio_app, "+14155550102", age=5)  # may still be in flight: left alone

    report = reconcile(twilio_app)
    assert [c.delivery_id for c in report.changes] == [delivery_id]
    assert reconcile(twilio_app).changes == []  # the retry is scheduled: not enqueued twice
    with twilio_app.app_context():
        young_message = db.session.get_one(Delivery, young_id).message_id
    result = twilio_app.test_cli_runner().invoke(args=["sms", "reconcile", "--message", str(young_message)])
    assert "note: 1 deliveries have no Twilio SID yet" in result.output  # said, not silently skipped
    run_worker(twilio_app, burst=True)

    with twilio_app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        assert delivery.status == "sent" and delivery.external_message_id
        assert db.session.get(Delivery, young_id).status == "sending"
    assert _creates_to(simulator, DELIVERED_TO) == 1
    assert _creates_to(simulator, "+14155550102") == 0


def test_a_resend_after_an_operator_retry_gets_the_rest_of_its_rounds_tries(
    twilio_app: Flask, simulator: Simulator
) -> None:
    # Round one spends all 3 tries on 500s; the operator's Retry starts round two, whose first
    # try dies mid-send. `attempts` is 4 by then, but the re-send is try 2 of 3, not 5 of 3.
    twilio_app.config.update(SEND_MAX_ATTEMPTS=3, SEND_RETRY_BASE_SECONDS=0.05, SEND_RETRY_MAX_SECONDS=0.2)
    simulator.set_knobs(error_500_rate=1.0)
    _send(twilio_app, [DELIVERED_TO])
    run_worker(twilio_app, burst=True)
    with twilio_app.app_context():
        (delivery_id,) = db.session.scalars(select(Delivery.id)).all()
        assert db.session.get_one(Delivery, delivery_id).status == "failed"
        assert retry_delivery(delivery_id)
    _die_mid_send(twilio_app, delivery_id)

    report = reconcile(twilio_app)
    assert [(c.delivery_id, c.after) for c in report.changes] == [(delivery_id, "enqueued again")]
    run_worker(twilio_app, burst=True)  # still 500: the round's last two tries, then it gives up

    details = _job_details_after_recovery(twilio_app, delivery_id)
    assert [kind for kind, _ in details] == ["sending", "retry", "sending", "failed"], details
    first, retry, last, failed = details
    assert first == ("sending", "attempt 2 of 3")
    assert retry[0] == "retry" and "; attempt 3 of 3 in " in (retry[1] or "")
    assert last == ("sending", "attempt 3 of 3")
    assert failed == ("failed", "gave up after 3 attempts")
    assert _creates_to(simulator, DELIVERED_TO) == 0


def test_a_worker_dying_on_the_rounds_last_try_fails_the_delivery_for_the_retry_button(
    twilio_app: Flask, simulator: Simulator
) -> None:
    twilio_app.config["SEND_MAX_ATTEMPTS"] = 1
    delivery_id = _stuck(twilio_app, DELIVERED_TO)

    report = reconcile(twilio_app)
    assert [(c.delivery_id, c.after) for c in report.changes] == [(delivery_id, "failed")]
    run_worker(twilio_app, burst=True)  # nothing was enqueued
    with twilio_app.app_context():
        delivery = db.session.get_one(Delivery, delivery_id)
        assert (delivery.status, delivery.error_code) == ("failed", None)
        assert can_retry(delivery)
        failed = db.session.scalars(
            select(Event.detail).where(Event.delivery_id == delivery_id, Event.event_type == "failed")
        ).one()
        assert failed.startswith("gave up after 1 attempt: the worker sending this stopped")
    assert _creates_to(simulator, DELIVERED_TO) == 0

    with twilio_app.app_context():
        assert retry_delivery(delivery_id)
    run_worker(twilio_app, burst=True)
    with twilio_app.app_context():
        assert db.session.get_one(Delivery, delivery_id).status == "sent"
    assert _creates_to(simulator, DELIVERED_TO) == 1


def test_a_21610_the_reconciler_fetches_records_the_opt_out(twilio_app: Flask, simulator: Simulator) -> None:
    # Issue 12, item 8: Twilio failed the message 21610 after accepting it (a Messaging Service's
    # opt-out handling does) and the callback never came; the fetch brings the failure, and the
    # opt-out with it, as a callback would have.
    message_id, ids = _send(twilio_app, [TO_NO_RECEIPT])
    simulator.settle()
    (sent,) = simulator.messages
    simulator.store.advance(sent.sid, "failed", 21610)

    reconcile(twilio_app, message_id=message_id)

    delivery = _deliveries(twilio_app, message_id)[TO_NO_RECEIPT]
    assert (delivery.status, delivery.error_code) == ("failed", 21610)
    with twilio_app.app_context():
        assert is_opted_out(TO_NO_RECEIPT, simulator.from_number)


def test_a_stuck_delivery_whose_message_another_delivery_took_meanwhile_costs_the_run_nothing_else(
    twilio_app: Flask, simulator: Simulator, make_delivery: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 12, item 7: between the look-up and the adoption, another delivery stored the SID the
    # look-up found. The clash is that delivery's only: it is reported and stays stuck for the next
    # run to look again, and the run goes on to recover the next one.
    first, second = _stuck(twilio_app, DELIVERED_TO), _stuck(twilio_app, "+14155550102")
    holder = make_delivery(to="+14155550199", status="sent")
    with twilio_app.app_context():  # both dead workers' requests did reach Twilio
        sids = {
            number: get_client().messages.create(to=number, from_=simulator.from_number, body=BODY).sid
            for number in (DELIVERED_TO, "+14155550102")
        }
    simulator.settle()  # and they have been delivered since
    find = reconciler.find_existing_message

    def found_then_taken(delivery_id: int) -> Any:
        message = find(delivery_id)
        if delivery_id == first:
            with twilio_app.app_context():  # another transaction, committed before the adoption
                db.session.execute(
                    update(Delivery).where(Delivery.id == holder).values(external_message_id=message.sid)
                )
                db.session.commit()
        return message

    monkeypatch.setattr(reconciler, "find_existing_message", found_then_taken)
    report = reconcile(twilio_app)

    with twilio_app.app_context():
        stuck, adopted = db.session.get_one(Delivery, first), db.session.get_one(Delivery, second)
        assert (stuck.status, stuck.external_message_id) == ("sending", None)
        assert (adopted.status, adopted.external_message_id) == ("delivered", sids["+14155550102"])
    assert {c.delivery_id for c in report.changes} == {second}
    assert any(f"delivery {first}" in e and f"delivery {holder}" in e for e in report.errors), report.errors
    assert len(simulator.messages) == 2


# -- a real worker process, killed mid-send -----------------------------------------------------


def _worker_env(app: Flask, simulator: Simulator) -> dict[str, str]:
    """The environment that makes `flask --app wsgi worker` use this test's database, Redis and
    simulator."""
    config = app.config
    redis_url = shareable_url(app)  # the embedded server too
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "RECONCILE_"))}
    env.update(
        simulator.client_config(),
        DATABASE_URL=config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=redis_url,
        BASE_HOST_URL=config["BASE_HOST_URL"],
        SECRET_KEY="worker-test-secret-key",
        RECONCILE_STUCK_SENDING_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_mid_send_leaves_nothing_stuck_and_sends_nothing_twice(
    twilio_app: Flask, simulator: Simulator, tmp_path: Path
) -> None:
    """Three deliveries, one worker, SIGKILLed while the first create is held inside Twilio and
    the other two wait for their send slot (0.2/s): Twilio gets the first and never sees the rest."""
    numbers = [DELIVERED_TO, "+14155550102", "+14155550103"]
    simulator.set_knobs(latency=5.0)  # every create is held for 5 s before Twilio records it
    env = _worker_env(twilio_app, simulator)
    with twilio_app.app_context():
        message_id = compose_message(BODY, [Recipient(n) for n in numbers], author_id=None).id
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
        cwd=PROJECT_ROOT,
        env={**env, "SEND_RATE_PER_SECOND": "0.2"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def all_sending() -> bool:
            return {d.status for d in _deliveries(twilio_app, message_id).values()} == {"sending"}

        _wait_for(all_sending, 30, "the worker to claim the deliveries")
        time.sleep(0.5)  # the first create is now held inside the simulator
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
    assert simulator.messages == []  # killed mid-send: Twilio has not answered yet
    first = _wait_for(lambda: simulator.messages, 15, "the held create to finish")[0]
    stuck = _deliveries(twilio_app, message_id)
    assert all(d.status == "sending" and d.external_message_id is None for d in stuck.values())

    # A new worker takes over. The scheduler lock a SIGKILLed worker holds expires after 61 s;
    # the test does not wait for that.
    get_redis(twilio_app).delete(f"rq:scheduler-lock:{QUEUE_NAME}")
    time.sleep(1.1)  # past RECONCILE_STUCK_SENDING_SECONDS
    simulator.set_knobs(latency=0.0)
    burst = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert burst.returncode == 0, burst.stderr[-3000:]

    after = _deliveries(twilio_app, message_id)
    assert {(d.status, bool(d.external_message_id)) for d in after.values()} <= {("sent", True), ("delivered", True)}
    assert after[first.to].external_message_id == first.sid  # adopted, not sent again
    assert sorted(d.external_message_id or "" for d in after.values()) == sorted(m.sid for m in simulator.messages)
    assert Counter(m.to for m in simulator.messages) == Counter(numbers)  # one create each, never two
    with twilio_app.app_context():  # the new worker's scheduled reconciler recovered all three
        events = db.session.execute(
            select(Event.delivery_id, Event.event_type, Event.detail).where(Event.source == "reconciler")
        ).all()
    assert sorted((e.delivery_id, e.event_type) for e in events if e.event_type in ("sent", "retry")) == sorted(
        [(after[first.to].id, "sent")] + [(after[n].id, "retry") for n in numbers if n != first.to]
    )
    simulator.flush_callbacks()
    assert {d.status for d in _deliveries(twilio_app, message_id).values()} == {"delivered"}


# -- abandoned work, known from RQ's records rather than a timer --------------------------------


def _kill_mid_send(app: Flask, simulator: Simulator, numbers: list[str], log_path: Path) -> tuple[int, Any]:
    """Compose to `numbers` and SIGKILL the worker sending them while the first create is held
    inside Twilio (5 s) and the rest wait for their send slot (0.2/s): (message id, the one
    message Twilio got, once its held create has finished)."""
    simulator.set_knobs(latency=5.0)
    with app.app_context():
        message_id = compose_message(BODY, [Recipient(n) for n in numbers], author_id=None).id
    log = log_path.open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
        cwd=PROJECT_ROOT,
        env={**_worker_env(app, simulator), "SEND_RATE_PER_SECOND": "0.2"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def all_sending() -> bool:
            return {d.status for d in _deliveries(app, message_id).values()} == {"sending"}

        _wait_for(all_sending, 30, "the worker to claim the deliveries")
        time.sleep(0.5)  # the first create is now held inside the simulator
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
    assert simulator.messages == []  # killed mid-send: Twilio has not answered yet
    first = _wait_for(lambda: simulator.messages, 15, "the held create to finish")[0]
    simulator.set_knobs(latency=0.0)
    get_redis(app).delete(f"rq:scheduler-lock:{QUEUE_NAME}")  # the dead worker's, for ~1 min more
    return message_id, first


def test_sms_reconcile_recovers_a_killed_workers_sends_once_rq_sees_it_dead_not_after_the_timer(
    twilio_app: Flask, simulator: Simulator, tmp_path: Path
) -> None:
    numbers = [DELIVERED_TO, "+14155550102", "+14155550103"]
    message_id, first = _kill_mid_send(twilio_app, simulator, numbers, tmp_path / "worker.log")
    assert twilio_app.config["RECONCILE_STUCK_SENDING_SECONDS"] == 600  # the timer is far off
    reconcile_now = ["sms", "reconcile", "--message", str(message_id)]

    # Within the heartbeat's TTL, RQ still counts the dead worker's job as running.
    early = twilio_app.test_cli_runner().invoke(args=reconcile_now)
    assert "changed 0." in early.output, early.output

    with time_machine.travel(time.time() + heartbeat.HEARTBEAT_TTL_SECONDS + 1):
        result = twilio_app.test_cli_runner().invoke(args=reconcile_now)
        assert result.exit_code == 0, result.output
        ids = {n: d.id for n, d in _deliveries(twilio_app, message_id).items()}
        assert f"delivery {ids[first.to]} to {first.to}: sending -> sent (adopted {first.sid})" in result.output
        for number in numbers:
            if number != first.to:
                assert f"delivery {ids[number]} to {number}: sending -> enqueued again" in result.output
        run_worker(twilio_app, burst=True)

    after = _deliveries(twilio_app, message_id)
    assert {d.status for d in after.values()} <= {"sent", "delivered"}
    assert after[first.to].external_message_id == first.sid  # adopted, not sent again
    assert Counter(m.to for m in simulator.messages) == Counter(numbers)  # one create each


def test_a_send_job_that_died_after_twilio_accepted_is_adopted_by_the_next_run(
    twilio_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database went away after the claim committed, as the answers came back: the job
    # fails for good, its deliveries stay `sending`, and Twilio has both messages.
    def database_gone(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("UPDATE comms_deliveries ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(send_queue, "FIRST_ATTEMPT_JOB_RETRY", None)
    monkeypatch.setattr(send_job, "_record", database_gone)
    with twilio_app.app_context():
        message_id = compose_message(BODY, [Recipient(DELIVERED_TO), Recipient(TO_NO_RECEIPT)], author_id=None).id
    # The worker's scheduled reconciler runs after the failed job, its stuck timer 10 minutes off.
    run_worker(twilio_app, burst=True)
    monkeypatch.undo()
    assert twilio_app.config["RECONCILE_STUCK_SENDING_SECONDS"] == 600

    sids = {m.to: m.sid for m in simulator.messages}
    after = _deliveries(twilio_app, message_id)
    assert {n: d.external_message_id for n, d in after.items()} == sids
    assert {d.status for d in after.values()} <= {"sent", "delivered"}
    for delivery in after.values():
        assert _external_events(twilio_app, delivery.id)[("sent", "reconciler")] == 1  # adopted
    assert reconcile(twilio_app).changes == []
    run_worker(twilio_app, burst=True)
    assert len(simulator.messages) == 2  # nothing sent twice


def test_a_retry_waiting_out_its_backoff_is_left_alone_until_redis_loses_it(
    twilio_app: Flask, simulator: Simulator
) -> None:
    twilio_app.config.update(SEND_RETRY_BASE_SECONDS=300, SEND_RETRY_MAX_SECONDS=300)
    simulator.set_knobs(error_500_rate=1.0)
    with twilio_app.app_context():
        message_id = compose_message(BODY, [Recipient(DELIVERED_TO)], author_id=None).id
        queue = get_queue()
        AppWorker([queue], connection=queue.connection, app=twilio_app).work(burst=True)  # not waiting for retries
    (delivery,) = _deliveries(twilio_app, message_id).values()
    assert delivery.status == "sending"  # a 500: its retry is scheduled 300 s out
    simulator.set_knobs(error_500_rate=0.0)
    reconcile_now = ["sms", "reconcile", "--message", str(message_id)]

    waiting = twilio_app.test_cli_runner().invoke(args=reconcile_now)
    assert "changed 0." in waiting.output, waiting.output

    get_redis(twilio_app).flushdb()  # the scheduled retry is gone
    lost = twilio_app.test_cli_runner().invoke(args=reconcile_now)
    assert f"delivery {delivery.id} to {DELIVERED_TO}: sending -> enqueued again" in lost.output, lost.output
    run_worker(twilio_app, burst=True)
    assert _deliveries(twilio_app, message_id)[DELIVERED_TO].status == "sent"
    assert _creates_to(simulator, DELIVERED_TO) == 1


def test_a_send_job_that_fails_mid_batch_ends_only_after_the_sends_it_started(
    twilio_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Paced at 1/s, the second send waits for its slot while the first answer is recorded, and
    # recording it fails. Had the job ended there, the recovery would look at Twilio before the
    # second create got there, and send that delivery again.
    twilio_app.config["SEND_RATE_PER_SECOND"] = 1.0

    def database_gone(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("UPDATE comms_deliveries ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(send_queue, "FIRST_ATTEMPT_JOB_RETRY", None)
    monkeypatch.setattr(send_job, "_record", database_gone)
    with twilio_app.app_context():
        message_id = compose_message(BODY, [Recipient(DELIVERED_TO), Recipient(TO_NO_RECEIPT)], author_id=None).id
    run_worker(twilio_app, burst=True)  # the failed job, then the scheduled reconciler
    monkeypatch.undo()

    assert Counter(m.to for m in simulator.messages) == Counter([DELIVERED_TO, TO_NO_RECEIPT])
    after = _deliveries(twilio_app, message_id)
    assert {n: d.external_message_id for n, d in after.items()} == {m.to: m.sid for m in simulator.messages}


# -- the reconciler's lock over a long run ------------------------------------------------------

STUCK_NUMBERS = [DELIVERED_TO, "+14155550102", "+14155550103"]


def test_a_long_stuck_work_loop_keeps_renewing_the_reconciler_lock(
    twilio_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    twilio_app.config["RECONCILE_BATCH_SIZE"] = 1  # one look-up per batch: each follows a renewal
    for number in STUCK_NUMBERS:
        _stuck(twilio_app, number)
    redis_client = get_redis(twilio_app)
    lock_left: list[int] = []
    look = reconciler.find_existing_message

    def look_late(delivery: Delivery) -> Any:
        lock_left.append(redis_client.pttl(LOCK_KEY))
        redis_client.pexpire(LOCK_KEY, 1000)  # as if the run had gone on until 1 s of its lock was left
        return look(delivery)

    monkeypatch.setattr(reconciler, "find_existing_message", look_late)
    report = reconcile(twilio_app)

    assert [c.after for c in report.changes] == ["enqueued again"] * 3
    assert len(lock_left) == 3 and all(left > 1000 for left in lock_left), lock_left  # renewed each time


def test_a_run_that_lost_its_lock_stops_so_two_runs_never_overlap(
    twilio_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in STUCK_NUMBERS:
        _stuck(twilio_app, number)
    redis_client = get_redis(twilio_app)
    look = reconciler.find_existing_message

    def look_after_another_run_took_over(delivery: Delivery) -> Any:
        redis_client.set(LOCK_KEY, "another run's token", px=600_000)  # ours expired; another run holds it
        return look(delivery)

    monkeypatch.setattr(reconciler, "find_existing_message", look_after_another_run_took_over)
    report = reconcile(twilio_app)

    assert len(report.changes) == 1  # the one in hand is finished, then the run stops
    assert report.errors and "the reconciler's lock was lost" in report.errors[0]
    assert redis_client.get(LOCK_KEY) == b"another run's token"  # the other run's lock is left alone


def test_stuck_deliveries_are_looked_up_at_twilio_side_by_side(
    twilio_app: Flask, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One at a time, a run recovered about 3 stuck deliveries a second (bench/chaos.py, after a
    Redis restart lost 600 retries). The three look-ups here meet at a barrier: one at a time,
    the first would wait there alone and the run would fail."""
    for number in STUCK_NUMBERS:
        _stuck(twilio_app, number)
    meet = threading.Barrier(len(STUCK_NUMBERS), timeout=10)
    look = reconciler.find_existing_message

    def look_together(delivery_id: int) -> Any:
        meet.wait()
        return look(delivery_id)

    monkeypatch.setattr(reconciler, "find_existing_message", look_together)
    report = reconcile(twilio_app)
    assert [c.after for c in report.changes] == ["enqueued again"] * 3
