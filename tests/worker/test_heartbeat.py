"""The worker's heartbeat: a running job stays registered as alive in RQ's records, past the
TTL of any one heartbeat, for as long as its worker runs it."""

from __future__ import annotations

import time

import pytest
import time_machine
from flask import Flask
from rq import Queue, get_current_job

from smsdash.worker import heartbeat
from smsdash.worker.liveness import live_executions
from smsdash.worker.queue import QUEUE_NAME, get_queue
from smsdash.worker.runner import run_worker


def outlive_the_first_registration() -> dict[str, bool]:
    """A job (run by the worker under test) that checks, from inside, that its execution is
    kept alive once the time its first registration gave it has passed."""
    execution = heartbeat.current_execution()
    job = get_current_job()
    assert execution is not None and job is not None and execution.startswith(f"{job.id}:")
    queue = Queue(QUEUE_NAME, connection=job.connection)
    first = job.connection.zscore(queue.started_job_registry.key, execution)
    assert first is not None
    with time_machine.travel(time.time() + heartbeat.HEARTBEAT_TTL_SECONDS + 5):
        deadline = time.monotonic() + 5  # real seconds: the beat is 50 ms away
        while job.connection.zscore(queue.started_job_registry.key, execution) <= first:
            assert time.monotonic() < deadline, "no heartbeat renewed the registration"
            time.sleep(0.01)
        return {"alive": execution in live_executions(queue), "first_ran_out": first < time.time()}


def test_a_running_job_is_kept_alive_past_its_first_registration(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat, "HEARTBEAT_SECONDS", 0.05)
    assert heartbeat.current_execution() is None  # not inside a job
    with app.app_context():
        job = get_queue().enqueue(outlive_the_first_registration)
        run_worker(app, burst=True)
        assert job.get_status(refresh=True) == "finished", job.exc_info
        assert job.return_value() == {"alive": True, "first_ran_out": True}
        assert live_executions(get_queue()) == set()  # ended: nothing left registered
