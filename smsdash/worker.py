"""The RQ queue and the `worker` command: jobs run inside one long-lived app context.

The worker is an RQ SimpleWorker: jobs run in the worker process itself instead of a fork per
job, so the app, its database pool and its Twilio HTTP session are built once, not per job.
"""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from rq import Queue, SimpleWorker

from .redis_conn import get_redis

QUEUE_NAME = "smsdash"


def get_queue(app: Flask | None = None) -> Queue:
    """The one work queue, on the app's Redis."""
    return Queue(QUEUE_NAME, connection=get_redis(app))


@click.command("worker")
@click.option("--burst", is_flag=True, help="Work until the queue is empty, then exit.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker (with its scheduler) inside the app context."""
    queue = get_queue(current_app)
    worker = SimpleWorker([queue], connection=queue.connection)
    worker.work(burst=burst, with_scheduler=True)


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
