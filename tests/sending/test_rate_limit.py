"""Twilio's 429 ("too many requests"): it slows every sender down and costs no delivery a try.

End to end like test_job.py: compose, a real RQ worker on a real Redis, the real twilio SDK
against the simulator, whose `error_429_rate` and `retry_after` knobs play the storm. Waits
longer than a test should sleep are crossed with time-machine (the window) or read off the
shared pause in Redis without waiting for it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import redis
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import Event
from smsdash.redis_conn import shareable_url
from smsdash.sending import job as send_job
from smsdash.sending.ratelimit import LONGEST_SLEEP_SECONDS, SendPaused, SendRateLimiter, pause_remaining
from smsdash.simulator import Simulator
from smsdash.worker.queue import get_queue
from tests.messages.test_live import _row
from tests.sending.test_job import ALICE, burst, compose, deliveries, run_job_once


def _job_events(app: Flask, delivery_id: int, kind: str) -> list[Event]:
    with app.app_context():
        rows = db.session.scalars(
            select(Event).where(Event.delivery_id == delivery_id, Event.event_type == kind).order_by(Event.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def _scheduled_kwargs(app: Flask) -> dict[str, object]:
    """The keyword arguments of the newest send job in RQ's schedule: the one the last run put
    there (an older one is a stale copy, which would claim nothing)."""
    with app.app_context():
        registry = ScheduledJobRegistry(queue=get_queue())
        jobs = [job for job in (get_queue().fetch_job(i) for i in registry.get_job_ids()) if job is not None]
        assert jobs, "nothing is scheduled"
        return dict(max(jobs, key=lambda job: int(job.kwargs["expected_attempts"])).kwargs)


def test_a_429_storm_sends_every_delivery_once_without_spending_tries(twilio_app: Flask, simulator: Simulator) -> None:
    # Two tries each: if a 429 cost one, about a quarter of the 20 would fail (429 twice running).
    twilio_app.config.update(
        SEND_MAX_ATTEMPTS=2, SEND_RETRY_BASE_SECONDS=0.05, SEND_RETRY_MAX_SECONDS=0.2, SEND_CONCURRENCY=8
    )
    simulator.set_knobs(error_429_rate=0.5)
    numbers = [f"+1415555{n:04d}" for n in range(400, 420)]
    compose(twilio_app, *numbers)
    burst(twilio_app)

    rows = deliveries(twilio_app)
    assert [d.status for d in rows] == ["sent"] * 20, [(d.status, d.error_code) for d in rows]
    assert sorted(m.to for m in simulator.messages) == numbers  # each once
    waited = 0
    for delivery in rows:
        tries = [e.payload["try"] for e in _job_events(twilio_app, delivery.id, "sending")]
        assert set(tries) == {1}, tries  # every claim was still the first try of two
        waits = _job_events(twilio_app, delivery.id, "retry")
        assert all(w.payload["rate_limited"] and w.error_code == 20429 for w in waits)
        waited += bool(waits)
    assert waited  # the storm did hit: some deliveries waited, and still went out


def test_retry_after_pauses_every_sender_through_redis(twilio_app: Flask, simulator: Simulator) -> None:
    # Twilio asks for 30 s: far longer than a sending thread sleeps, so another worker's limiter
    # (its own Redis connection) refuses to send at once instead of waiting it out here.
    simulator.set_knobs(error_429_rate=1.0, retry_after=30)
    compose(twilio_app, ALICE)
    (delivery,) = deliveries(twilio_app)
    assert run_job_once(twilio_app, delivery.id) == {"rate_limited": 1}

    other_worker = redis.Redis.from_url(shareable_url(twilio_app))  # as another process would connect
    try:
        assert 25 < pause_remaining(other_worker) <= 30
        limiter = SendRateLimiter(other_worker, None, backoff_base=0.05, backoff_cap=0.2)
        try:
            limiter.wait()
        except SendPaused as paused:
            assert 25 < paused.remaining <= 30
        else:
            raise AssertionError("a limiter in another worker sent during Twilio's Retry-After")
    finally:
        other_worker.close()
    assert 30 > LONGEST_SLEEP_SECONDS

    # The delivery waits for the pause (at most SEND_RETRY_MAX_SECONDS at a time), at the same try.
    (wait,) = _job_events(twilio_app, delivery.id, "retry")
    assert wait.payload["next_try"] == 1 and wait.payload["rate_limited"] is True
    retry_at = datetime.fromisoformat(wait.payload["retry_at"])
    assert timedelta(seconds=29) <= retry_at - wait.received_at <= timedelta(seconds=45)
    kwargs = _scheduled_kwargs(twilio_app)
    assert (kwargs["try_number"], kwargs["expected_attempts"]) == (1, 1)

    # Its next run, still inside the pause, does not call Twilio (which would now accept it).
    simulator.set_knobs(error_429_rate=0.0)
    with twilio_app.app_context():
        assert send_job.send_delivery(delivery.id, **kwargs) == {"rate_limited": 1}  # type: ignore[arg-type]
    assert simulator.messages == []
    assert _scheduled_kwargs(twilio_app)["try_number"] == 1


def test_a_delivery_gives_up_on_429s_only_after_the_window_and_says_why(
    twilio_app: Flask, simulator: Simulator, logged_in: FlaskClient
) -> None:
    twilio_app.config.update(SEND_MAX_ATTEMPTS=2, SEND_RETRY_BASE_SECONDS=0.05, SEND_RETRY_MAX_SECONDS=0.2)
    assert twilio_app.config["SEND_RATE_LIMIT_GIVE_UP_SECONDS"] == 36000  # the default: Twilio's 10 hours
    simulator.set_knobs(error_429_rate=1.0)
    mid = compose(twilio_app, ALICE)
    (delivery,) = deliveries(twilio_app)
    assert run_job_once(twilio_app, delivery.id) == {"rate_limited": 1}
    kwargs = _scheduled_kwargs(twilio_app)
    started = datetime.fromisoformat(str(kwargs["rate_limited_since"]))

    with time_machine.travel(started + timedelta(hours=9, minutes=59), tick=False), twilio_app.app_context():
        assert send_job.send_delivery(delivery.id, **kwargs) == {"rate_limited": 1}  # type: ignore[arg-type]
    kwargs = _scheduled_kwargs(twilio_app)
    assert kwargs["rate_limited_since"] == started.isoformat()  # the window keeps its start
    assert deliveries(twilio_app)[0].status == "sending"

    with time_machine.travel(started + timedelta(hours=10), tick=False), twilio_app.app_context():
        assert send_job.send_delivery(delivery.id, **kwargs) == {"failed": 1}  # type: ignore[arg-type]
    (after,) = deliveries(twilio_app)
    assert (after.status, after.error_code, after.external_message_id) == ("failed", 20429, None)
    (failed,) = _job_events(twilio_app, delivery.id, "failed")
    assert failed.detail == (
        "gave up after 10 hours of Twilio answering 429 (too many requests): "
        "Twilio never took this message, so it was not sent"
    )
    assert simulator.messages == []

    # The message page: the cell says what failed and offers Retry; the timeline says why.
    html = logged_in.get(f"/messages/{mid}").get_data(as_text=True)
    cell = _row(html, delivery.id)
    assert 'data-status="failed"' in cell and "Too many requests to Twilio at once." in cell
    assert f"/deliveries/{delivery.id}/retry" in cell
    timeline = logged_in.get(f"/messages/{mid}/deliveries/{delivery.id}/timeline").get_data(as_text=True)
    assert "gave up after 10 hours of Twilio answering 429 (too many requests)" in timeline


def test_the_message_page_says_a_rate_limited_send_is_waiting_without_spending_an_attempt(
    twilio_app: Flask, simulator: Simulator, logged_in: FlaskClient
) -> None:
    twilio_app.config.update(SEND_MAX_ATTEMPTS=4, SEND_RETRY_BASE_SECONDS=0.05, SEND_RETRY_MAX_SECONDS=300.0)
    simulator.set_knobs(error_429_rate=1.0, retry_after=60)
    mid = compose(twilio_app, ALICE)
    (delivery,) = deliveries(twilio_app)
    assert run_job_once(twilio_app, delivery.id) == {"rate_limited": 1}

    cell = _row(logged_in.get(f"/messages/{mid}").get_data(as_text=True), delivery.id)
    assert 'data-status="sending"' in cell
    note = re.search(r'<span class="retry-wait">(.*?)</span>', cell, re.S)
    assert note, cell
    text = re.sub(r"<[^>]+>", "", note.group(1))
    text = re.sub(r"\s+", " ", text).strip()
    assert re.fullmatch(
        r"waiting: Twilio asked us to slow down, sending again at \d\d:\d\d:\d\d\.\d UTC, "
        r"still attempt 1 of 4 \(waiting uses up no attempt\)\. "
        r"Fails if Twilio still refuses at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d UTC\. "
        r"20429 Too many requests to Twilio at once\.",
        text,
    ), text
    assert "waiting to retry" not in cell  # not the backoff note: no attempt was used up
