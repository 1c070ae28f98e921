"""The sweeper: queued deliveries whose send job is gone from Redis are enqueued again, and a
backlog whose jobs are only waiting their turn is left alone. Real RQ on a real Redis."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from rq import Queue
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from smsdash.compose.service import Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import Delivery, utcnow
from smsdash.redis_conn import get_redis
from smsdash.sending import job as send_job
from smsdash.sending import queue as send_queue
from smsdash.sending.queue import sweep_unenqueued
from smsdash.simulator import Simulator
from smsdash.worker import heartbeat
from smsdash.worker.queue import get_queue
from smsdash.worker.runner import AppWorker, run_worker

NUMBERS = [f"+1415555010{i}" for i in range(1, 6)]


def _compose(app: Flask) -> int:
    with app.app_context():
        return compose_message("Hello again", [Recipient(n) for n in NUMBERS], author_id=None).id


def _statuses(app: Flask, message_id: int) -> Counter[str]:
    with app.app_context():
        return Counter(db.session.scalars(select(Delivery.status).where(Delivery.message_id == message_id)))


def _sweep(app: Flask) -> int:
    with app.app_context():
        return sweep_unenqueued()


def _later(seconds: float) -> time_machine.travel:
    return time_machine.travel(time.time() + seconds)


def test_a_campaign_whose_jobs_redis_lost_is_enqueued_again_and_sent_once(
    twilio_app: Flask, simulator: Simulator
) -> None:
    message_id = _compose(twilio_app)
    get_redis(twilio_app).flushdb()  # Redis restarted without persistence, or flushed
    assert _sweep(twilio_app) == 0  # within the grace period: compose may still be enqueueing

    with _later(twilio_app.config["SEND_SWEEP_GRACE_SECONDS"] + 1):
        assert _sweep(twilio_app) == len(NUMBERS)
        assert _sweep(twilio_app) == 0  # enqueued again: the new job is alive
        run_worker(twilio_app, burst=True)

    assert _statuses(twilio_app, message_id) == Counter({"sent": len(NUMBERS)})
    assert Counter(m.to for m in simulator.messages) == Counter(NUMBERS)


def test_a_backlog_still_waiting_in_redis_is_not_enqueued_twice(twilio_app: Flask, simulator: Simulator) -> None:
    twilio_app.config.update(SEND_BATCH_SIZE=2, SEND_CONCURRENCY=1)  # three jobs: 2 + 2 + 1
    message_id = _compose(twilio_app)
    with twilio_app.app_context():
        queue = get_queue()
        jobs = queue.get_job_ids()
        assert len(jobs) == 3
        # One waits out RQ's retry interval, as after a database blip: scheduled, not queued.
        waiting = queue.fetch_job(jobs[0])
        queue.remove(waiting)
        queue.schedule_job(waiting, utcnow() + timedelta(minutes=5))

    with _later(600):  # ten minutes behind a rate limit, say
        assert _sweep(twilio_app) == 0
        with twilio_app.app_context():
            assert get_queue().get_job_ids() == jobs[1:]  # no job added, none moved
    assert _statuses(twilio_app, message_id) == Counter({"queued": len(NUMBERS)})


def _fail_for_good(app: Flask, monkeypatch: pytest.MonkeyPatch) -> float:
    """The job meets a database error on every run and RQ gives up on it."""

    def database_gone(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("UPDATE comms_deliveries ...", {}, Exception("server closed the connection"))

    with monkeypatch.context() as patch:
        patch.setattr(send_job, "_claim", database_gone)
        run_worker(app, burst=True)
    with app.app_context():
        assert len(get_queue().failed_job_registry.get_job_ids()) == 1
    return float(app.config["SEND_SWEEP_GRACE_SECONDS"]) + 1


def _die_before_claiming(app: Flask, monkeypatch: pytest.MonkeyPatch) -> float:
    """A worker takes the job and dies before its claim commits: RQ has it `started`, on an
    execution nobody heartbeats any more."""
    with app.app_context():
        queue = get_queue()
        job, _ = Queue.dequeue_any([queue], None, connection=queue.connection)
        worker = AppWorker([queue], connection=queue.connection, app=app)
        worker.prepare_execution(job)
        worker.prepare_job_execution(job)
        assert job.get_status(refresh=True) == "started"
    return heartbeat.HEARTBEAT_TTL_SECONDS + 1


@pytest.mark.parametrize("lose", [_fail_for_good, _die_before_claiming], ids=["failed-for-good", "worker-died"])
def test_queued_deliveries_whose_job_ended_without_claiming_them_are_enqueued_again(
    twilio_app: Flask,
    simulator: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    lose: Callable[[Flask, pytest.MonkeyPatch], float],
) -> None:
    monkeypatch.setattr(send_queue, "FIRST_ATTEMPT_JOB_RETRY", None)
    message_id = _compose(twilio_app)
    after = lose(twilio_app, monkeypatch)
    assert _statuses(twilio_app, message_id) == Counter({"queued": len(NUMBERS)})

    with _later(after):
        assert _sweep(twilio_app) == len(NUMBERS)
        run_worker(twilio_app, burst=True)

    assert _statuses(twilio_app, message_id) == Counter({"sent": len(NUMBERS)})
    assert Counter(m.to for m in simulator.messages) == Counter(NUMBERS)
