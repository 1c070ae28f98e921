"""Heartbeats while a job runs, so that RQ's records show within seconds that a job's worker died.

RQ's forking Worker heartbeats from its monitoring loop while the work horse runs; a
SimpleWorker runs the job in its own thread and sends nothing until the job ends, so it
registers each execution for the whole job timeout plus a minute (over 10 minutes for a send
batch). A worker SIGKILLed mid-send would look busy all that time. Here a thread sends RQ's own
heartbeat (`maintain_heartbeats`, what the forking Worker sends) every HEARTBEAT_SECONDS while a
job runs, and every registration lasts HEARTBEAT_TTL_SECONDS: the StartedJobRegistry entry of a
worker that stops beating (killed, frozen, cut off from Redis) expires within that, which is
what `liveness` reads and what RQ's own abandoned-job cleanup goes by.

The execution running in this thread is published too (`current_execution`), so that a job can
record which execution claimed its work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import redis
from rq.executions import Execution
from rq.job import Job
from rq.worker import BaseWorker

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
# Four beats: a Redis blip (the patient client rides it out in seconds) or a busy machine delays
# a beat by a second or two, not by fifteen. Together with the reconciler's 60 s interval, this
# bounds how long a killed worker's deliveries wait for recovery.
HEARTBEAT_TTL_SECONDS = 20

_current: ContextVar[str | None] = ContextVar("smsdash_rq_execution", default=None)


def current_execution() -> str | None:
    """The RQ execution running the current job, as the StartedJobRegistry names it
    (`<job id>:<execution id>`); None outside a worker (a job function called directly)."""
    return _current.get()


@contextmanager
def beating(worker: BaseWorker, job: Job, execution: Execution) -> Iterator[None]:
    """Heartbeat `execution` (and its worker) until the block ends, publishing it as current."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                worker.maintain_heartbeats(job, execution)
            except redis.RedisError as exc:  # the next beat tries again
                log.warning("heartbeat of job %s failed: %s", job.id, exc)

    thread = threading.Thread(target=beat, name=f"rq-heartbeat-{job.id}", daemon=True)
    token = _current.set(execution.composite_key)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        _current.reset(token)
