"""Which RQ work is still alive, read from RQ's own records.

A job is alive while RQ will still run it (queued, scheduled for later, deferred, …) or is
running it on an execution whose worker still heartbeats: its StartedJobRegistry entry has not
expired (see `heartbeat`). Anything else never does its work: no such job (Redis flushed or
restarted empty, the key evicted), a job that failed for good, finished, or was stopped, and one
started by a worker that has since died.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from rq import Queue
from rq.job import JobStatus, parse_job_id
from rq.utils import as_text, current_timestamp

# The states after which RQ never runs a job again by itself.
ENDED = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})


def live_executions(queue: Queue) -> set[str]:
    """The queue's executions (`<job id>:<execution id>`) whose worker still heartbeats.

    The StartedJobRegistry scores each by when its heartbeat runs out; RQ's cleanup takes the
    ones at or below now for abandoned, and so does this. Only running work is listed: a few
    entries per worker."""
    entries = cast(
        "list[bytes]", queue.connection.zrangebyscore(queue.started_job_registry.key, f"({current_timestamp()}", "+inf")
    )
    return {as_text(entry) for entry in entries}


def live_jobs(queue: Queue, job_ids: Iterable[str]) -> set[str]:
    """The ids among `job_ids` of jobs RQ will still run or is running on a live worker."""
    ids = sorted(set(job_ids))
    if not ids:
        return set()
    with queue.connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(queue.job_class.key_for(job_id), "status")
        statuses = {job_id: as_text(raw) for job_id, raw in zip(ids, pipe.execute(), strict=True) if raw}
    running: set[str] | None = None
    alive = set()
    for job_id, status in statuses.items():
        if status in ENDED:
            continue
        if status == JobStatus.STARTED:
            if running is None:
                running = {parse_job_id(key) for key in live_executions(queue)}
            if job_id not in running:
                continue
        alive.add(job_id)
    return alive
