"""The worker process: an RQ worker whose jobs run inside one long-lived app context.

The worker is an RQ SimpleWorker: jobs run in the worker process itself instead of a fork per
job, so the app, its database pool, its Twilio HTTP session and its sending threads are built
once, not per job. Its scheduler (RQ's, extended by `periodic`) moves due retries to the queue
and enqueues the periodic tasks (`smsdash/schedule.py` lists them). While a job runs, a thread
heartbeats it (`heartbeat`), so a killed worker's jobs show as abandoned within seconds. This package is a leaf: it
imports no feature code, and finds the tasks in the app that `create_app` built.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from flask import Flask
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.worker import WorkerStatus

from smsdash.worker import heartbeat, logs, periodic
from smsdash.worker.queue import get_queue

# Longest a burst waits between checks for scheduled retries that are not due yet.
BURST_POLL_SECONDS = 1.0

log = logging.getLogger(__name__)


class AppWorker(SimpleWorker):
    """A SimpleWorker whose scheduler also runs the app's periodic tasks, and that heartbeats
    the job it runs."""

    def __init__(self, *args: Any, app: Flask, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = app

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long each heartbeat registers the running job (SimpleWorker's is the whole job
        timeout, as it sends no heartbeat while a job runs)."""
        return heartbeat.HEARTBEAT_TTL_SECONDS

    def execute_job(self, job: Job, queue: Queue) -> None:
        """SimpleWorker's, with the job heartbeated while it runs."""
        execution = self.prepare_execution(job)
        with heartbeat.beating(self, job, execution):
            self.perform_job(job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    def _start_scheduler(
        self, burst: bool = False, logging_level: Any = "INFO", date_format: str = "", log_format: str = ""
    ) -> None:
        kwargs = {k: v for k, v in (("date_format", date_format), ("log_format", log_format)) if v}
        self.scheduler = periodic.PeriodicScheduler(
            self.queues,
            connection=self.connection,
            serializer=self.serializer,
            logging_level=logging_level if logging_level is not None else self.log.level,
            periodic=periodic.tasks(self.app),
            **kwargs,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()
        else:
            self.scheduler.start()


def run_worker(app: Flask, burst: bool = False) -> None:
    """Work the queue. In burst mode, keep going until the queue is empty AND no scheduled job
    (a retry waiting out its backoff) remains: RQ's own burst mode would exit and leave them."""
    queue = get_queue(app)
    level = app.config.get("LOG_LEVEL") or "info"
    logs.configure(level, (task.name for task in periodic.tasks(app)))
    if not burst:
        AppWorker([queue], connection=queue.connection, app=app).work(with_scheduler=True, logging_level=level.upper())
        return
    registry = ScheduledJobRegistry(queue=queue)
    while True:
        AppWorker([queue], connection=queue.connection, app=app).work(
            burst=True, with_scheduler=True, logging_level=level.upper()
        )
        if queue.count:
            continue
        upcoming = registry.connection.zrange(registry.key, 0, 0, withscores=True)
        if not upcoming:
            return
        wait = cast(float, upcoming[0][1]) - time.time()  # the score: redis's types ignore withscores
        time.sleep(min(max(wait, 0.05), BURST_POLL_SECONDS))
