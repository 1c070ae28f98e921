"""Putting send work on Redis: first attempts in pipelined batches, retries, and the sweeper.

The database is the source of truth and Redis only carries work, so every path here follows one
rule: deliveries are committed first, then enqueued, then marked `enqueued_at`. If Redis is
down in between, the deliveries stay `queued` with `enqueued_at` NULL, and the sweeper (run
periodically by the worker's scheduler) enqueues them once Redis is back. A delivery enqueued
twice is harmless: the send job claims it with a conditional UPDATE, so only one job sends.
Because of that fallback, first attempts go through the fail-fast Redis client: compose and the
Retry button answer at once when Redis is down, and a sweep that fails waits for the next one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import redis
from flask import current_app
from rq import Queue, Retry
from sqlalchemy import func, select, update

from smsdash.chunks import chunks
from smsdash.extensions import db
from smsdash.models import Delivery, utcnow
from smsdash.worker.queue import get_queue

log = logging.getLogger(__name__)

# How often the worker's sweeper looks for deliveries that never reached Redis.
SWEEP_EVERY_SECONDS = 30

# The jobs by their stable names (smsdash/jobs.py), which survive moves of the code behind them.
SEND_BATCH = "smsdash.jobs.send_batch"
SEND_DELIVERY = "smsdash.jobs.send_delivery"
# Batches per Redis round trip: large enough that 10,000 deliveries take a handful of trips.
BATCHES_PER_PIPELINE = 25
# Finished jobs carry nothing worth keeping; the database has the outcome.
RESULT_TTL = 600
# The most deliveries one sweep enqueues; the next sweep takes the rest.
SWEEP_LIMIT = 10_000
# With SEND_RATE_PER_SECOND set, a batch holds about this many seconds of sends.
PACED_JOB_SECONDS = 10
# A first-attempt job that fails (the database went away mid-claim) or whose worker died before
# its claim committed leaves its deliveries `queued` and marked enqueued: neither the sweeper
# (never enqueued) nor the stuck-work recovery (`sending`) looks at them, so RQ runs the job
# again, spaced to ride out a database restart or failover. Safe: claims are conditional.
FIRST_ATTEMPT_JOB_RETRY = Retry(max=3, interval=[1, 10, 60])


def batch_timeout(batch_size: int) -> int:
    """RQ's job timeout for one batch: generous, and longer when a sender rate paces the sends."""
    config = current_app.config
    rate = config.get("SEND_RATE_PER_SECOND")
    paced = batch_size / rate * 1.2 if rate else 0
    return int(600 + paced + float(config.get("TWILIO_READ_TIMEOUT") or 15) * 2)


def batch_size() -> int:
    """SEND_BATCH_SIZE rounded up to whole multiples of SEND_CONCURRENCY (or, when a sender rate
    paces the sends, about PACED_JOB_SECONDS of them).

    A batch job ends when its slowest send does; a batch that is not a whole number of "waves"
    of the worker's pool leaves threads idle through its last wave (100 deliveries on 32 threads
    take four round trips, the last one with 4 threads busy)."""
    config = current_app.config
    size = max(int(config["SEND_BATCH_SIZE"]), 1)
    rate = config.get("SEND_RATE_PER_SECOND")
    if rate:
        # Paced sends make long jobs; keep each to ~10 s so a worker told to stop (Heroku allows
        # 30 s) finishes its job instead of being killed mid-send.
        return max(1, min(size, math.ceil(float(rate) * PACED_JOB_SECONDS)))
    pool = max(int(config["SEND_CONCURRENCY"]), 1)
    return -(-size // pool) * pool


def batch_job_id(batch: Sequence[int]) -> str:
    """Deterministic: the same deliveries enqueued again (compose retried, the sweeper) reuse
    the job id instead of piling up new jobs."""
    return f"send_d{batch[0]}-d{batch[-1]}_n{len(batch)}"


def enqueue_first_attempts(delivery_ids: Sequence[int]) -> int:
    """Enqueue `queued` deliveries in batches of SEND_BATCH_SIZE, many batches per pipeline,
    and mark each enqueued batch's `enqueued_at`. Commits. Returns how many were enqueued; on a
    Redis error it logs and stops at once, without retrying, leaving the rest for the sweeper."""
    batches = list(chunks(sorted(delivery_ids), batch_size()))
    queue = get_queue(fail_fast=True)
    enqueued = 0
    try:
        for group in chunks(batches, BATCHES_PER_PIPELINE):
            _enqueue_group(queue, group)
            ids = [i for batch in group for i in batch]
            db.session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids), Delivery.enqueued_at.is_(None))
                .values(enqueued_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            db.session.commit()
            enqueued += len(ids)
    except redis.RedisError as exc:
        db.session.rollback()
        log.warning("Redis unavailable, %d deliveries left for the sweeper: %s", len(delivery_ids) - enqueued, exc)
    return enqueued


def not_enqueued(message_id: int) -> int:
    """How many of a message's deliveries are `queued` but never reached Redis: the ones the
    sweeper will enqueue once it can."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.message_id == message_id, Delivery.status == "queued", Delivery.enqueued_at.is_(None))
        )
        or 0
    )


def _enqueue_group(queue: Queue, group: Sequence[Sequence[int]]) -> None:
    jobs = [
        Queue.prepare_data(
            SEND_BATCH,
            args=(batch,),
            job_id=batch_job_id(batch),
            timeout=batch_timeout(len(batch)),
            result_ttl=RESULT_TTL,
            retry=FIRST_ATTEMPT_JOB_RETRY,
            description=f"send {len(batch)} deliveries from #{batch[0]}",
        )
        for batch in group
    ]
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()


def schedule_retry(
    delivery_id: int,
    *,
    attempts: int,
    try_number: int,
    verify: bool,
    delay: float,
    rate_limited_since: datetime | None = None,
    pipeline: redis.client.Pipeline | None = None,
) -> None:
    """Schedule attempt `try_number` of a delivery whose `attempts` counter stands at `attempts`.

    The job id names the attempt, so the same retry scheduled twice is one job; the worker's
    scheduler moves it to the queue when it falls due (`worker --burst` waits for it). A delivery
    waiting out 429s carries when they began (`rate_limited_since`), for its give-up window."""
    queue = get_queue()
    since = {"rate_limited_since": rate_limited_since.isoformat()} if rate_limited_since else {}
    queue.enqueue_in(
        timedelta(seconds=delay),
        SEND_DELIVERY,
        delivery_id,
        expected_attempts=attempts,
        try_number=try_number,
        verify=verify,
        **since,
        job_id=f"send_d{delivery_id}_a{attempts}",
        job_timeout=batch_timeout(1),
        result_ttl=RESULT_TTL,
        pipeline=pipeline,
    )


def sweep_unenqueued(grace_seconds: float | None = None) -> int:
    """Enqueue deliveries still `queued` that never reached Redis (composed while it was down).

    Runs periodically on the worker's scheduler. Deliveries younger than the grace period are
    left alone: compose may be enqueueing them right now. Returns how many were enqueued."""
    if grace_seconds is None:
        grace_seconds = float(current_app.config["SEND_SWEEP_GRACE_SECONDS"])
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    ids = (
        db.session.execute(
            select(Delivery.id)
            .where(Delivery.status == "queued", Delivery.enqueued_at.is_(None), Delivery.created_at <= cutoff)
            .order_by(Delivery.id)
            .limit(SWEEP_LIMIT)
        )
        .scalars()
        .all()
    )
    db.session.commit()
    if not ids:
        return 0
    log.info("sweeper: enqueueing %d deliveries that never reached Redis", len(ids))
    return enqueue_first_attempts(ids)


def waiting_for_redis_note(message_id: int) -> str | None:
    """What to tell the operator when a composed message's sends could not be handed to Redis
    (None when they were), in the same words on the compose page and from `sms send`."""
    waiting = not_enqueued(message_id)
    if not waiting:
        return None
    what = "1 delivery is" if waiting == 1 else f"{waiting} deliveries are"
    return (
        f"Not sent yet: Redis (the job queue) cannot be reached. The {what} saved as queued, and "
        f"sending starts by itself once Redis is back (the worker looks every {SWEEP_EVERY_SECONDS} s)."
    )
