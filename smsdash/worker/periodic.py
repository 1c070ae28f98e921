"""Periodic tasks, run by the worker's scheduler: one line registers one.

    periodic.register(app, sweep_unenqueued, seconds=60)   # in smsdash/schedule.py

RQ's scheduler runs in every worker started `--with-scheduler`, but only the one holding the
queue's scheduler lock moves due jobs; periodic tasks ride on that same lock, so with any number
of workers each task is enqueued once per interval. The timing comes from `rq.cron.CronJob`
(its interval arithmetic and job history), the leadership from RQScheduler. A task runs as an
ordinary job inside the worker's app context, so it may use the database and Redis freely.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask
from rq.cron import CronJob
from rq.scheduler import RQScheduler
from rq.utils import now

from smsdash.worker.queue import QUEUE_NAME

log = logging.getLogger(__name__)

_EXTENSION_KEY = "smsdash_periodic"


def register(app: Flask, func: Callable[..., Any], *, seconds: int, timeout: int = 600) -> None:
    """Run `func` (a module-level function, importable by the worker) every `seconds`.

    Registering the same function twice keeps the first registration."""
    registered = tasks(app)
    name = f"{func.__module__}.{func.__name__}"
    if any(task.name == name for task in registered):
        return
    registered.append(
        CronJob(
            queue_name=QUEUE_NAME, func=func, interval=seconds, job_timeout=timeout, result_ttl=seconds * 2, name=name
        )
    )


def tasks(app: Flask) -> list[CronJob]:
    """The app's periodic tasks, each remembering when it last ran in this process."""
    registered: list[CronJob] = app.extensions.setdefault(_EXTENSION_KEY, [])
    return registered


class PeriodicScheduler(RQScheduler):
    """RQ's scheduler, which also enqueues the periodic tasks that are due, while it holds the
    queue's lock. In `--burst` the worker calls this once per round, in its own process."""

    def __init__(self, *args: Any, periodic: list[CronJob], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.periodic = periodic

    def enqueue_scheduled_jobs(self) -> None:
        super().enqueue_scheduled_jobs()
        if not self.acquired_locks:
            return
        for task in self.periodic:
            if task.should_run():
                task.enqueue(self.connection)
                task.set_enqueue_time(now())
