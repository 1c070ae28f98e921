"""The send job (the original system's SmsDeliverySendJob): one delivery, or a batch of them.

For each delivery: skip it, with an event saying why, if it was already sent, reached a final
status or its number opted out; claim it (`queued` -> `sending`, attempts + 1) with one
conditional UPDATE, so a job that runs twice sends once; create the message at Twilio; record
the outcome through the state machine. A batch runs its deliveries through a per-process
thread pool of SEND_CONCURRENCY, so one worker process overlaps Twilio's API latency instead of
waiting for each request in turn. Only the pool's threads talk to Twilio; the job's own thread
does all the database writing, committing the outcomes that finished together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import redis
from flask import Flask, current_app
from sqlalchemy import insert, select, update
from twilio.rest.api.v2010.account.message import MessageInstance

from smsdash.delivery.optouts import opted_out_among
from smsdash.delivery.pending import apply_pending
from smsdash.delivery.status import FINAL, Outcome, apply_status
from smsdash.delivery.timeline import record_event
from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message, PendingCallback, utcnow
from smsdash.redis_conn import get_redis
from smsdash.sending import queue as send_queue
from smsdash.sending.adopt import find_existing
from smsdash.sending.claims import claim_payload
from smsdash.sending.failures import SendFailure, backoff_delay, classify, rate_limit_gave_up, resume_delay
from smsdash.sending.ratelimit import SendPaused, SendRateLimiter, pause_remaining
from smsdash.twilio.error_codes import explain
from smsdash.twilio.messages_api import send_sms, sender_identity
from smsdash.twilio.public_url import public_base_url, status_callback_url, unreachable_reason

log = logging.getLogger(__name__)

# How long the job's thread lets finished sends gather before committing them together.
COMMIT_EVERY_SECONDS = 0.05


@dataclass(frozen=True)
class Work:
    """One delivery to attempt. `expected_attempts` is None for a first attempt (claimed from
    `queued`); a retry names the attempt count it follows, so a stale copy of it claims nothing.
    `verify` asks to look for the message at Twilio first (the last attempt may have reached it).
    `rate_limited_since` is when this try first met a 429, for the give-up window."""

    delivery_id: int
    expected_attempts: int | None = None
    try_number: int = 1
    verify: bool = False
    rate_limited_since: datetime | None = None


@dataclass(frozen=True)
class Claimed:
    work: Work
    to: str
    body: str
    attempts: int
    created_at: datetime
    callback: str | None
    validity: int | None = None  # the message's ValidityPeriod


@dataclass(frozen=True)
class Result:
    message: MessageInstance | None = None
    adopted: bool = False
    error: BaseException | None = None


def send_batch(delivery_ids: Sequence[int]) -> dict[str, int]:
    """RQ job: first attempts for many deliveries, sent concurrently."""
    return run([Work(int(i)) for i in delivery_ids])


def send_delivery(
    delivery_id: int,
    expected_attempts: int | None = None,
    try_number: int = 1,
    verify: bool = False,
    rate_limited_since: str | None = None,
) -> dict[str, int]:
    """RQ job: one delivery (a first attempt, or a scheduled retry)."""
    since = datetime.fromisoformat(rate_limited_since) if rate_limited_since else None
    return run([Work(int(delivery_id), expected_attempts, try_number, verify, since)])


def run(works: Sequence[Work]) -> dict[str, int]:
    """Claim, send and record `works`; return counts of what happened (for the job's result)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy, typed as Flask
    counts: dict[str, int] = {}
    try:
        claimed = _claim(works, counts)
        if claimed:
            _send_all(app, claimed, counts)
    except BaseException:
        db.session.rollback()
        raise
    finally:
        db.session.remove()
    return counts


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def max_tries(config: Mapping[str, Any]) -> int:
    """SEND_MAX_ATTEMPTS as the events say it ("attempt 2 of 5") and the retry decision uses it.

    It counts tries in one round: a first attempt is try 1, each retry (the job's, or the
    reconciler's re-send after a worker died) the next; the dashboard's Retry starts a new round
    at 1. `Delivery.attempts` counts claims over every round, so it is not the try number."""
    return int(config.get("SEND_MAX_ATTEMPTS") or 1)


def gave_up(tries: int) -> str:
    """The failure detail for a round that used up its tries (shared with the reconciler, so a
    delivery reads the same whichever of them gave up)."""
    return f"gave up after {tries} attempt{'' if tries == 1 else 's'}"


# --- claiming -----------------------------------------------------------------------------


def _skip_reason(work: Work, status: str, attempts: int, sid: str | None) -> tuple[str | None, bool]:
    """(why this delivery must not be sent, whether that deserves a timeline event).

    A delivery another job is sending right now is skipped quietly: it is not news, only a
    duplicate job (compose and the sweeper both enqueued it, or RQ ran a job twice)."""
    if status == "canceled":
        return "not sent: the delivery was canceled", True
    if sid or status == "sent" or status in FINAL:
        return f"not sent again: Twilio already has this message (status {status})", True
    if work.expected_attempts is None:
        return (None, False) if status == "queued" else ("being sent by another job", False)
    if status != "sending" or attempts != work.expected_attempts:
        return "a newer attempt already ran", False
    return None, False


def _claim(works: Sequence[Work], counts: dict[str, int]) -> list[Claimed]:
    """Skip what must not be sent, claim the rest, record `sending` events; commits."""
    by_id = {w.delivery_id: w for w in works}
    rows = db.session.execute(
        select(
            Delivery.id,
            Delivery.status,
            Delivery.to_number,
            Delivery.attempts,
            Delivery.external_message_id,
            Delivery.created_at,
            Delivery.body,
            Message.validity_seconds,
        )
        .join(Message, Message.id == Delivery.message_id)
        .where(Delivery.id.in_(list(by_id)))
    ).all()
    opted_out = opted_out_among({r.to_number for r in rows}, sender_identity())
    first: list[int] = []
    retry: list[Work] = []
    for row in rows:
        work = by_id[row.id]
        reason, noteworthy = _skip_reason(work, row.status, row.attempts, row.external_message_id)
        if reason:
            _bump(counts, "skipped")
            if noteworthy:
                record_event(row.id, "skipped", source="job", detail=reason)
            else:
                log.info("delivery %s skipped: %s", row.id, reason)
        elif row.to_number in opted_out:
            _bump(counts, "opted_out")
            apply_status(
                row.id,
                "canceled",
                source="job",
                detail=f"not sent: {row.to_number} opted out (replied STOP) for this sender",
            )
        elif work.expected_attempts is None:
            first.append(row.id)
        else:
            retry.append(work)
    now = utcnow()
    won: dict[int, int] = {}
    if first:
        won.update(
            db.session.execute(
                update(Delivery)
                .where(Delivery.id.in_(first), Delivery.status == "queued", Delivery.external_message_id.is_(None))
                .values(status="sending", attempts=Delivery.attempts + 1, updated_at=now)
                .returning(Delivery.id, Delivery.attempts)
                .execution_options(synchronize_session=False)
            ).all()
        )
    for work in retry:
        won.update(
            db.session.execute(
                update(Delivery)
                .where(
                    Delivery.id == work.delivery_id,
                    Delivery.status == "sending",
                    Delivery.attempts == work.expected_attempts,
                    Delivery.external_message_id.is_(None),
                )
                .values(attempts=Delivery.attempts + 1, updated_at=now)
                .returning(Delivery.id, Delivery.attempts)
                .execution_options(synchronize_session=False)
            ).all()
        )
    if not won:
        db.session.commit()
        return []
    config = current_app.config
    budget = max_tries(config)
    db.session.execute(
        insert(Event),
        [
            {
                "delivery_id": delivery_id,
                "event_type": "sending",
                "source": "job",
                "received_at": now,
                "detail": f"attempt {by_id[delivery_id].try_number} of {budget}",
                "payload": claim_payload(attempts, by_id[delivery_id].try_number),
            }
            for delivery_id, attempts in won.items()
        ],
    )
    unreachable = unreachable_reason(public_base_url(config))
    if unreachable:
        for delivery_id in won:
            record_event(
                delivery_id,
                "notice",
                source="job",
                dedupe_key="job:callbacks-unreachable",
                detail=f"sent without live status updates: {unreachable}; "
                "statuses arrive only when the reconciler asks Twilio",
            )
    db.session.commit()
    return [
        Claimed(
            _reopened_looks_first(by_id[r.id], won[r.id]),
            r.to_number,
            r.body,
            won[r.id],
            r.created_at,
            status_callback_url(config, r.id),
            r.validity_seconds,
        )
        for r in rows
        if r.id in won
    ]


def _reopened_looks_first(work: Work, attempts: int) -> Work:
    """A first-attempt claim of a delivery that was attempted before is an operator's Retry of a
    failure (retry_delivery reopens it as `queued`). Its last attempt may have timed out after
    Twilio accepted it, so it looks for that message before creating another."""
    return replace(work, verify=True) if work.expected_attempts is None and attempts > 1 else work


# --- sending ------------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor(size: int) -> ThreadPoolExecutor:
    """The process's sending threads, created once and reused by every job it runs."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers != size:
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="smsdash-send")
        return _pool


def _attempt(app: Flask, claimed: Claimed, limiter: SendRateLimiter) -> Result:
    """Runs in a pool thread: one look-up or create at Twilio, never a database write."""
    with app.app_context():
        try:
            if claimed.work.verify:
                existing = find_existing(claimed.work.delivery_id, claimed.to, claimed.body, claimed.created_at)
                if existing is not None:
                    return Result(message=existing, adopted=True)
            limiter.wait()
            return Result(message=send_sms(claimed.to, claimed.body, claimed.callback, claimed.validity))
        except Exception as exc:  # classified by the job's thread
            failure = classify(exc)
            if failure is not None and failure.rate_limited and not isinstance(exc, SendPaused):
                # Here, not in the job's thread: every other sender must hold off from now on.
                limiter.slow_down(failure.retry_after)
            return Result(error=exc)


def _backoff(config: Mapping[str, Any]) -> tuple[float, float]:
    """SEND_RETRY_BASE_SECONDS and SEND_RETRY_MAX_SECONDS: the shape of the pause after a 429 and of
    a rate-limited delivery's wait (the same settings as the retries' backoff in `_failed`)."""
    return float(config.get("SEND_RETRY_BASE_SECONDS") or 1.0), float(config.get("SEND_RETRY_MAX_SECONDS") or 300.0)


def _send_all(app: Flask, claimed: list[Claimed], counts: dict[str, int]) -> None:
    config = app.config
    rate = config.get("SEND_RATE_PER_SECOND")
    base, cap = _backoff(config)
    limiter = SendRateLimiter(get_redis(app), float(rate) if rate else None, backoff_base=base, backoff_cap=cap)
    pool = _executor(max(int(config.get("SEND_CONCURRENCY") or 1), 1))
    futures: dict[Future[Result], Claimed] = {pool.submit(_attempt, app, c, limiter): c for c in claimed}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=COMMIT_EVERY_SECONDS, return_when=ALL_COMPLETED)
            if not done:
                continue
            accepted: list[tuple[int, str]] = []
            retries = [r for f in done if (r := _record(futures[f], f.result(), counts, accepted)) is not None]
            db.session.commit()
            # Only after the SIDs are committed: a callback parked before then is visible now, and
            # one parked after it finds the SID itself (webhooks._keep_until_known looks again).
            _apply_waiting_callbacks(accepted)
            db.session.commit()
            _schedule(retries)
    finally:
        # Leaving with an error (the database went away): sends not started are called off, and
        # the job ends only once those in flight have. Its execution ending tells the reconciler
        # that its claims are abandoned (abandoned.py), and a re-send must not race a request
        # still on its way to Twilio.
        for future in pending:
            future.cancel()
        wait(pending)


# --- recording outcomes -------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPlan:
    delivery_id: int
    attempts: int
    try_number: int
    verify: bool
    delay: float
    rate_limited_since: datetime | None = None


def _record(
    claimed: Claimed, result: Result, counts: dict[str, int], accepted: list[tuple[int, str]]
) -> RetryPlan | None:
    """Write one attempt's outcome (in the job's transaction), adding (delivery id, SID) to
    `accepted` when Twilio has the message; return a retry to schedule."""
    if result.message is not None:
        outcome = _accepted(claimed, result.message, result.adopted)
        if not (result.adopted and outcome.sid_held_by is not None):
            if outcome.sid_stored:
                accepted.append((claimed.work.delivery_id, result.message.sid))
            _bump(counts, "adopted" if result.adopted else "sent")
            return None
        # Two look-ups in one batch (the same text to the same number twice) both picked this
        # message, and the other delivery stored it first: look again, and find the other one.
        failure = SendFailure(
            True,
            None,
            f"the message found at Twilio ({result.message.sid}) "
            "went to another delivery with the same number and text",
            True,
        )
        return _failed(claimed, failure, counts)
    assert result.error is not None
    classified = classify(result.error)
    if classified is None:
        # Not Twilio, not the network: a bug or a missing setting. The request may even have
        # gone out, so retrying could double-send; fail it visibly instead.
        log.error("delivery %s: unexpected error from send_sms", claimed.work.delivery_id, exc_info=result.error)
        classified = SendFailure(False, None, f"unexpected error: {result.error!r}", True)
    return _failed(claimed, classified, counts)


def _accepted(claimed: Claimed, message: MessageInstance, adopted: bool) -> Outcome:
    """Record Twilio's message as the delivery's. A SID another delivery holds costs the round
    nothing: a message Twilio created for this delivery is `sent` without it (logged), and an
    adopted one is that other delivery's, so nothing is written (see `sid_held_by`)."""
    detail = (
        ("Twilio already had this message from an attempt that timed out; adopted it instead of sending again")
        if adopted
        else None
    )
    payload = {"sid": message.sid, "twilio_status": message.status, "attempt": claimed.attempts}
    return apply_status(
        claimed.work.delivery_id, "sent", source="job", sid=message.sid, adopted=adopted, payload=payload, detail=detail
    )


def _apply_waiting_callbacks(accepted: list[tuple[int, str]]) -> None:
    """Apply the callbacks that arrived for these SIDs before we stored them (the pending inbox).

    Runs after the commit that stored the SIDs: looking before it, a callback parked between the
    look and the commit would be missed by both sides (the webhook's own look-up could not see
    the uncommitted SID). Nearly always none wait, so one query asks which SIDs have any,
    instead of one per delivery."""
    if not accepted:
        return
    waiting = set(
        db.session.execute(
            select(PendingCallback.message_sid)
            .distinct()
            .where(PendingCallback.message_sid.in_([sid for _, sid in accepted]), PendingCallback.applied_at.is_(None))
        ).scalars()
    )
    for delivery_id, sid in accepted:
        if sid in waiting:
            apply_pending(delivery_id, sid)


def _failed(claimed: Claimed, failure: SendFailure, counts: dict[str, int]) -> RetryPlan | None:
    if failure.rate_limited:
        return _rate_limited(claimed, failure, counts)
    config = current_app.config
    delivery_id = claimed.work.delivery_id
    budget = max_tries(config)
    try_number = claimed.work.try_number
    if failure.retryable and try_number < budget:
        delay = backoff_delay(
            try_number,
            float(config.get("SEND_RETRY_BASE_SECONDS") or 1.0),
            float(config.get("SEND_RETRY_MAX_SECONDS") or 300.0),
        )
        # retry_at lets the dashboard say when the next attempt falls due without parsing detail.
        retry_at = utcnow() + timedelta(seconds=delay)
        record_event(
            delivery_id,
            "retry",
            source="job",
            error_code=failure.code,
            detail=f"{failure.reason}; attempt {try_number + 1} of {budget} in {delay:.1f} s",
            payload={
                "may_have_reached_twilio": failure.may_have_reached,
                "retry_at": retry_at.isoformat(),
                "next_try": try_number + 1,
                "max_tries": budget,
                "reason": failure.reason,
            },
        )
        _bump(counts, "retry")
        # `verify` carries over: once any attempt may have reached Twilio, every later one looks first.
        return RetryPlan(
            delivery_id, claimed.attempts, try_number + 1, failure.may_have_reached or claimed.work.verify, delay
        )
    detail = gave_up(try_number) if failure.retryable else explain(failure.code).meaning
    # Without a SID this is our guess (status.is_guess): after a lost answer Twilio may have the
    # message and have said so meanwhile, and then its status stands.
    apply_status(
        delivery_id,
        "failed",
        source="job",
        error_code=failure.code,
        error_message=failure.reason,
        sender=sender_identity(),
        detail=detail,
        dedupe=False,
        payload={"attempt": claimed.attempts, "retryable": failure.retryable},
    )
    _bump(counts, "failed")
    return None


def _rate_limited(claimed: Claimed, failure: SendFailure, counts: dict[str, int]) -> RetryPlan | None:
    """Twilio said "slow down" (or sending is paused because it did): nothing is wrong with the
    message, so the delivery waits for the pause to end and goes again at the same try, its try
    budget untouched. Only when 429s have held this try for SEND_RATE_LIMIT_GIVE_UP_SECONDS
    (Twilio's own queue keeps a message 10 hours) does it fail, saying so."""
    config = current_app.config
    delivery_id = claimed.work.delivery_id
    now = utcnow()
    since = claimed.work.rate_limited_since or now
    window = float(config["SEND_RATE_LIMIT_GIVE_UP_SECONDS"])
    if (now - since).total_seconds() >= window:
        apply_status(
            delivery_id,
            "failed",
            source="job",
            error_code=failure.code,
            error_message=failure.reason,
            detail=rate_limit_gave_up((now - since).total_seconds()),
            dedupe=False,
            payload={"attempt": claimed.attempts, "retryable": True, "rate_limited_since": since.isoformat()},
        )
        _bump(counts, "failed")
        return None
    delay = resume_delay(pause_remaining(get_redis()), *_backoff(config))
    try_number, budget = claimed.work.try_number, max_tries(config)
    record_event(
        delivery_id,
        "retry",
        source="job",
        error_code=failure.code,
        detail=f"{failure.reason}; attempt {try_number} of {budget} waits, not counted as a try, "
        f"and goes again in {delay:.1f} s",
        payload={
            "may_have_reached_twilio": False,
            "retry_at": (now + timedelta(seconds=delay)).isoformat(),
            "next_try": try_number,
            "max_tries": budget,
            "reason": failure.reason,
            "rate_limited": True,
            "give_up_at": (since + timedelta(seconds=window)).isoformat(),
        },
    )
    _bump(counts, "rate_limited")
    return RetryPlan(delivery_id, claimed.attempts, try_number, claimed.work.verify, delay, since)


def _schedule(retries: list[RetryPlan]) -> None:
    """Put committed retries on Redis in one round trip. If Redis is gone, the deliveries stay
    `sending` and the stuck-work recovery picks them up (it looks at Twilio before re-sending)."""
    if not retries:
        return
    try:
        with get_redis().pipeline() as pipe:
            for plan in retries:
                send_queue.schedule_retry(
                    plan.delivery_id,
                    attempts=plan.attempts,
                    try_number=plan.try_number,
                    verify=plan.verify,
                    delay=plan.delay,
                    rate_limited_since=plan.rate_limited_since,
                    pipeline=pipe,
                )
            pipe.execute()
    except redis.RedisError:
        log.exception("could not schedule %d retries; stuck-work recovery will find them", len(retries))
