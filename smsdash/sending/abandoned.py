"""Deliveries left in `sending` by work that no worker will finish, found from RQ's records.

A `sending` delivery without a SID is owned by the execution that claimed it (its claim records
which: claims.py) until that execution writes an outcome, and after a transient failure by the
retry job it scheduled for that attempt. When neither is alive (worker/liveness.py) the
delivery is abandoned: the worker was killed mid-send (its heartbeat stopped), the job died
after its claim committed (the database went away), or the retry never reached Redis or was
lost there. RQ knows that within its heartbeat's TTL, so the reconciler need not wait out a
timer that must exceed the longest send.

A claim that recorded no execution (the job ran outside a worker, or before executions were
recorded) is never called abandoned here: only the reconciler's timer can tell about it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import redis
from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import Delivery
from smsdash.sending.claims import latest_claims
from smsdash.sending.queue import retry_job_id
from smsdash.worker.liveness import live_executions, live_jobs
from smsdash.worker.queue import get_queue

log = logging.getLogger(__name__)


def abandoned(deliveries: Collection[tuple[int, int]]) -> set[int]:
    """Of `sending` deliveries without a SID, given as (id, attempts), the ids no live work owns.

    The database is read again after asking Redis: a job writes its outcome before its
    execution ends, so one that finished in between is seen to have finished, not taken for
    abandoned. When Redis cannot be asked, none is. Commits (before asking Redis, so that the
    second read is a new transaction and sees what committed meanwhile: SQLite would otherwise
    answer from the first read's snapshot)."""
    claims = latest_claims([delivery_id for delivery_id, _ in deliveries])
    tracked = {
        (delivery_id, attempts): claim.execution
        for delivery_id, attempts in deliveries
        if (claim := claims.get(delivery_id)) is not None and claim.attempts == attempts and claim.execution
    }
    db.session.commit()
    if not tracked:
        return set()
    queue = get_queue()
    try:
        running = live_executions(queue)
        retrying = live_jobs(queue, [retry_job_id(*delivery) for delivery in tracked])
    except redis.RedisError as exc:
        log.warning("cannot tell abandoned sends from live ones, Redis unavailable: %s", exc)
        return set()
    orphans = {
        delivery
        for delivery, execution in tracked.items()
        if execution not in running and retry_job_id(*delivery) not in retrying
    }
    if not orphans:
        return set()
    still = db.session.execute(
        select(Delivery.id, Delivery.attempts).where(
            Delivery.id.in_([delivery_id for delivery_id, _ in orphans]),
            Delivery.status == "sending",
            Delivery.external_message_id.is_(None),
        )
    )
    return {delivery_id for delivery_id, attempts in still if (delivery_id, attempts) in orphans}
