"""Putting send work on Redis: first attempts in pipelined batches, retries, and the sweeper.

The database is the source of truth and Redis only carries work, so every path here follows one
rule: deliveries are committed first, then enqueued, then marked `enqueued_at` (and
`enqueued_job_id`, the job that carries them). If Redis is down in between, the deliveries stay
`queued` with `enqueued_at` NULL, and the sweeper (run periodically by the worker's scheduler)
enqueues them once Redis is back. Work that reached Redis can still be lost there (Redis flushed
or restarted without persistence, keys evicted, a job that failed RQ's retries for good, a
worker that died before claiming its batch): the sweeper asks RQ whether each still-`queued`
delivery's job is alive (worker/liveness.py) and enqueues the ones whose job is not.
A delivery enqueued twice is harmless: the send job claims it with a conditional UPDATE, so
only one job sends. Because of that fallback, first attempts go through the fail-fast Redis
client: compose and the Retry button answer at once when Redis is down, and a sweep that fails
waits for the next one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import redis
from flask import current_app
from rq import Queue, Retry
from sqlalchemy import case, func, or_, select, update

from smsdash.chunks import chunks
from smsdash.extensions import db
from smsdash.models import Delivery, utcnow
from smsdash.worker.liveness import live_jobs
from smsdash.worker.queue import get_queue

log = logging.getLogger(__name__)

# How often the worker's sweeper looks for deliveries that never reached Redis, or lost their job there.
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
# The most jobs one sweep asks RQ about: a backlog of 1,000 batches (256,000 deliveries at the
# default batch size) is looked over whole in one round trip.
SWEEP_JOBS_LIMIT = 1_000
# With SEND_RATE_PER_SECOND set, a batch holds about this many seconds of sends.
PACED_JOB_SECONDS = 10
# A first-attempt job that fails (the database went away mid-claim) or whose worker died before
# its claim committed leaves its deliveries `queued`: RQ runs the job again, spaced to ride out
# a database restart or failover, and once those retries are spent the sweeper sees the job
# has ended and enqueues the deliveries afresh. Safe: claims are conditional.
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


def retry_job_id(delivery_id: int, attempts: int) -> str:
    """The job of the retry that follows the claim which brought `attempts` to its value: the
    same retry scheduled twice (the job's, the reconciler's) is one job."""
    return f"send_d{delivery_id}_a{attempts}"


def enqueue_first_attempts(delivery_ids: Sequence[int]) -> int:
    """Enqueue `queued` deliveries in batches of SEND_BATCH_SIZE, many batches per pipeline,
    and mark each enqueued batch's `enqueued_at` and job. Commits. Returns how many were
    enqueued; on a Redis error it logs and stops at once, without retrying, leaving the rest
    for the sweeper."""
    batches = list(chunks(sorted(delivery_ids), batch_size()))
    queue = get_queue(fail_fast=True)
    enqueued = 0
    try:
        for group in chunks(batches, BATCHES_PER_PIPELINE):
            _enqueue_group(queue, group)
            _mark_enqueued(group)
            db.session.commit()
            enqueued += sum(len(batch) for batch in group)
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


def _mark_enqueued(group: Sequence[Sequence[int]]) -> None:
    """Mark a group's deliveries enqueued, each with its batch's job, in one UPDATE.

    The batches are consecutive runs of sorted ids, so "the first batch whose last id is not
    below this one" names each delivery's batch. Marked again when enqueued again (the sweeper
    after a lost job): the newest job is the one to watch."""
    ids = [i for batch in group for i in batch]
    job_id = case(*[(Delivery.id <= batch[-1], batch_job_id(batch)) for batch in group])
    db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids))
        .values(enqueued_at=utcnow(), enqueued_job_id=job_id)
        .execution_options(synchronize_session=False)
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
        job_id=retry_job_id(delivery_id, attempts),
        job_timeout=batch_timeout(1),
        result_ttl=RESULT_TTL,
        pipeline=pipeline,
    )


def sweep_unenqueued(grace_seconds: float | None = None) -> int:
    """Enqueue deliveries still `queued` that no job in Redis will send: the ones that never
    reached Redis (composed while it was down), and the ones whose job Redis lost.

    Runs periodically on the worker's scheduler. Deliveries enqueued (or, never enqueued,
    created) less than the grace period ago are left alone: compose may be enqueueing them
    right now. Returns how many were enqueued."""
    if grace_seconds is None:
        grace_seconds = float(current_app.config["SEND_SWEEP_GRACE_SECONDS"])
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    never = list(
        db.session.scalars(
            select(Delivery.id)
            .where(Delivery.status == "queued", Delivery.enqueued_at.is_(None), Delivery.created_at <= cutoff)
            .order_by(Delivery.id)
            .limit(SWEEP_LIMIT)
        )
    )
    lost = _lost_first_attempts(cutoff, SWEEP_LIMIT - len(never))
    db.session.commit()
    if never:
        log.info("sweeper: enqueueing %d deliveries that never reached Redis", len(never))
    if lost:
        log.warning("sweeper: enqueueing again %d queued deliveries whose job Redis no longer has", len(lost))
    return enqueue_first_attempts(never + lost) if never or lost else 0


def _lost_first_attempts(cutoff: datetime, limit: int) -> list[int]:
    """`queued` deliveries enqueued before `cutoff` whose job RQ will never run.

    RQ is asked about jobs, not deliveries: a backlog that is merely waiting its turn behind a
    rate limit is a few hundred live jobs, looked up in one round trip, and enqueues nothing.
    A delivery enqueued before jobs were recorded (no `enqueued_job_id`) counts as lost: sent
    again through a second job at worst, which its claim makes harmless."""
    if limit <= 0:
        return []
    waiting = (Delivery.status == "queued", Delivery.enqueued_at.is_not(None), Delivery.enqueued_at <= cutoff)
    jobs = list(
        db.session.scalars(
            select(Delivery.enqueued_job_id)
            .where(*waiting)
            .group_by(Delivery.enqueued_job_id)
            .order_by(func.min(Delivery.id))
            .limit(SWEEP_JOBS_LIMIT)
        )
    )
    if not jobs:
        return []
    try:
        alive = live_jobs(get_queue(fail_fast=True), [job for job in jobs if job])
    except redis.RedisError as exc:  # cannot tell what is lost: the next sweep asks again
        log.warning("sweeper: Redis unavailable, lost jobs not looked for: %s", exc)
        return []
    dead = [job for job in jobs if job and job not in alive]
    lost_job = [Delivery.enqueued_job_id.in_(dead)] if dead else []
    if None in jobs:
        lost_job.append(Delivery.enqueued_job_id.is_(None))
    if not lost_job:
        return []
    return list(
        db.session.scalars(select(Delivery.id).where(*waiting, or_(*lost_job)).order_by(Delivery.id).limit(limit))
    )


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
