"""The reconciler: ask Twilio about deliveries whose status callbacks never came.

Callbacks get lost (a deploy during a burst, a tunnel that closed, a local run Twilio cannot
reach), and `sent` can stay `sent` forever at Twilio when a carrier gives no receipt. So
deliveries still not final past an age are fetched from Twilio by SID and the answer goes
through the same state machine as the webhook, with source `reconciler`. Twilio and the
reconciler share one dedupe key space in `status.py`, so a callback that arrives afterwards adds
no second event.

The reconciler also recovers stuck work: a delivery left in `sending` without a SID by a worker
that died mid-request (or a job that died after claiming it). RQ's records say so as soon as
the worker's heartbeat runs out (abandoned.py); a timer is the last resort for claims RQ cannot
tell about. Twilio may or may not have the message, so it is looked for first and adopted when
found; only when Twilio has none is the send enqueued again.

When the public base URL is unreachable (local development without a tunnel), no callback can
ever arrive: the ages drop to RECONCILE_LOCAL_INTERVAL_SECONDS and the worker runs the
reconciler that often, so badges still reach their final state within seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import redis
import requests
from flask import Flask, current_app
from sqlalchemy import and_, func, or_, select, update
from twilio.base.exceptions import TwilioException, TwilioRestException

from smsdash.chunks import chunks
from smsdash.delivery.pending import apply_pending
from smsdash.delivery.status import FAILURES, FINAL, KNOWN, apply_status, is_final, may_move
from smsdash.delivery.timeline import record_event
from smsdash.extensions import db, rows_changed
from smsdash.models import Delivery, utcnow
from smsdash.redis_conn import get_redis
from smsdash.sending.abandoned import abandoned
from smsdash.sending.adopt import find_existing_message
from smsdash.sending.claims import claimed_try
from smsdash.sending.job import gave_up, max_tries
from smsdash.sending.queue import schedule_retry
from smsdash.twilio.client import get_client
from smsdash.twilio.error_codes import explain, twilio_error_text
from smsdash.twilio.public_url import public_base_url, unreachable_reason

log = logging.getLogger(__name__)

NON_FINAL = tuple(sorted(KNOWN - FINAL))
LOCK_KEY = "smsdash:reconciler:lock"
# A run holds the lock this long past its last renewal (after every batch and every recovery, each
# well under a minute: a Twilio timeout ends the run), so a worker SIGKILLed mid-run blocks the
# next runs, `sms reconcile` included, for a minute at most (bench/chaos.py saw 10 minutes at 600).
LOCK_SECONDS = 60
# Rechecks of a delivery Twilio still reports non-final back off up to this interval.
MAX_RECHECK_SECONDS = 3600.0
# The most `sending` deliveries without a SID one run looks over for stuck work.
STUCK_CANDIDATES_PER_RUN = 1000
# Stuck deliveries looked up at Twilio at once (still within RECONCILE_RATE_PER_SECOND).
LOOKUP_THREADS = 8


@dataclass(frozen=True)
class Change:
    """One thing the reconciler changed, as `sms reconcile` prints it."""

    delivery_id: int
    to_number: str
    before: str
    after: str
    note: str

    def __str__(self) -> str:
        return f"delivery {self.delivery_id} to {self.to_number}: {self.before} -> {self.after} ({self.note})"


@dataclass
class Report:
    """What one reconciler run did."""

    checked: int = 0
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None


@dataclass(frozen=True)
class Ages:
    """How old a non-final delivery must be before Twilio is asked about it, in seconds."""

    sent: float
    pending: float
    stuck_sending: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Ages:
        stuck = float(config["RECONCILE_STUCK_SENDING_SECONDS"])
        if callbacks_unreachable(config):
            local = float(config["RECONCILE_LOCAL_INTERVAL_SECONDS"])
            return cls(sent=local, pending=local, stuck_sending=stuck)
        return cls(
            float(config["RECONCILE_SENT_AFTER_SECONDS"]), float(config["RECONCILE_PENDING_AFTER_SECONDS"]), stuck
        )


@dataclass(frozen=True)
class Target:
    """The columns of one delivery the reconciler reads. Plain values, not an ORM object: the
    state machine writes with conditional UPDATEs, and a stale ORM object flushed at commit
    would write its old status back over them."""

    id: int
    to_number: str
    status: str
    sid: str | None
    attempts: int
    created_at: datetime


TARGET_COLUMNS = (
    Delivery.id,
    Delivery.to_number,
    Delivery.status,
    Delivery.external_message_id,
    Delivery.attempts,
    Delivery.created_at,
)


def _targets(query: Any) -> list[Target]:
    """The deliveries `query` selects, with the read's transaction ended: Twilio is called next."""
    targets = [Target(*row) for row in db.session.execute(query)]
    db.session.commit()
    return targets


def callbacks_unreachable(config: Mapping[str, Any]) -> bool:
    """True when Twilio cannot call this app back, so the reconciler is the only source of status."""
    return unreachable_reason(public_base_url(config)) is not None


def interval_seconds(config: Mapping[str, Any]) -> int:
    """How often the worker's scheduler runs the reconciler."""
    key = "RECONCILE_LOCAL_INTERVAL_SECONDS" if callbacks_unreachable(config) else "RECONCILE_INTERVAL_SECONDS"
    return max(int(config[key]), 1)


class _Pace:
    """Spaces Twilio fetches `1/rate` apart: a run must not eat the account's API concurrency."""

    def __init__(self, rate: float | None) -> None:
        self.spacing = 1.0 / rate if rate and rate > 0 else 0.0
        self.next_at = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + self.spacing


class _StopRun(Exception):
    """Twilio is throttling or unreachable: end this run and let the next one continue."""


def reconcile(app: Flask | None = None, *, message_id: int | None = None) -> Report:
    """Run the reconciler once; with `message_id`, every non-final delivery of that message, now.

    One run at a time across all workers (a Redis lock): two runs would fetch the same messages
    twice and could both try to recover the same stuck delivery."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy, typed as Flask
    report = Report()
    lock = get_redis(app).lock(LOCK_KEY, timeout=LOCK_SECONDS, blocking=message_id is not None, blocking_timeout=30)
    try:
        acquired = lock.acquire()
    except redis.RedisError as exc:
        report.skipped = f"Redis unavailable: {exc}"
        return report
    if not acquired:
        report.skipped = "another reconciler run is in progress"
        return report

    def keep_lock() -> None:
        """Renew the lock for another LOCK_SECONDS; a run that lost it (it expired and another
        run may hold it now) stops, so two runs never overlap."""
        try:
            lock.extend(LOCK_SECONDS, replace_ttl=True)
        except redis.RedisError as exc:  # LockNotOwnedError is one
            raise _StopRun(f"stopped early: the reconciler's lock was lost ({exc})") from exc

    try:
        with app.app_context():
            _run(app.config, message_id, report, keep_lock=keep_lock)
    finally:
        try:
            lock.release()
        except redis.RedisError:  # expired or Redis gone: the lock's timeout frees it anyway
            pass
    for change in report.changes:
        log.info("reconciler: %s", change)
    return report


def _run(config: Mapping[str, Any], message_id: int | None, report: Report, keep_lock: Callable[[], Any]) -> None:
    ages = Ages.from_config(config)
    pace = _Pace(config.get("RECONCILE_RATE_PER_SECOND"))
    batch_size = max(int(config["RECONCILE_BATCH_SIZE"]), 1)
    try:
        for batch in chunks(_due_with_sid(config, ages, message_id), batch_size):
            _reconcile_batch(batch, ages, pace, report)
            keep_lock()  # a long --message run must not lose the lock halfway
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy, typed as Flask
        for stuck in chunks(_stuck_sending(ages, message_id), batch_size):
            found = _look_up(app, stuck, pace)
            for delivery in stuck:
                _recover_stuck(delivery, found[delivery.id], report)
                db.session.commit()
                keep_lock()  # a thousand recoveries at 10 Twilio look-ups a second outlast it
    except _StopRun as exc:
        db.session.commit()
        report.errors.append(str(exc))
    if message_id is not None:
        _note_unsent(message_id, report)


def _note_unsent(message_id: int, report: Report) -> None:
    """Deliveries Twilio has not accepted yet have no SID to ask about; say so, or an operator
    reading "changed 0" would think the reconciler looked at them."""
    waiting = db.session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.message_id == message_id, Delivery.external_message_id.is_(None), Delivery.status.in_(NON_FINAL)
        )
    )
    if waiting:
        report.notes.append(
            f"{waiting} deliveries have no Twilio SID yet (queued, or being sent): "
            "the worker sends them; a `sending` one is checked at Twilio once its worker "
            "is gone (or, if RQ cannot tell, once older than RECONCILE_STUCK_SENDING_SECONDS)"
        )


def _due_with_sid(config: Mapping[str, Any], ages: Ages, message_id: int | None) -> list[Target]:
    """Non-final deliveries with a SID that are due for a look, the longest-waiting first."""
    query = select(*TARGET_COLUMNS).where(Delivery.external_message_id.is_not(None), Delivery.status.in_(NON_FINAL))
    if message_id is not None:
        return _targets(query.where(Delivery.message_id == message_id).order_by(Delivery.id))
    now = utcnow()
    never_checked = Delivery.reconcile_after.is_(None)
    due = or_(
        and_(never_checked, Delivery.status == "sent", Delivery.updated_at <= now - timedelta(seconds=ages.sent)),
        and_(never_checked, Delivery.status != "sent", Delivery.updated_at <= now - timedelta(seconds=ages.pending)),
        Delivery.reconcile_after <= now,
    )
    horizon = now - timedelta(seconds=float(config["RECONCILE_GIVE_UP_SECONDS"]))
    return _targets(
        query.where(due, Delivery.created_at > horizon)
        .order_by(func.coalesce(Delivery.reconcile_after, Delivery.updated_at))
        .limit(max(int(config["RECONCILE_MAX_PER_RUN"]), 1))
    )


def _stuck_sending(ages: Ages, message_id: int | None) -> list[Target]:
    """Deliveries a job marked `sending` and then left without a SID: abandoned by their work,
    as RQ's records tell at once (abandoned.py), or, as the last resort for a claim RQ cannot
    tell about, left longer than any request can take (RECONCILE_STUCK_SENDING_SECONDS).
    Others may still be in flight, even with --message."""
    cutoff = utcnow() - timedelta(seconds=ages.stuck_sending)
    query = select(*TARGET_COLUMNS, Delivery.updated_at <= cutoff).where(
        Delivery.status == "sending", Delivery.external_message_id.is_(None)
    )
    if message_id is not None:
        query = query.where(Delivery.message_id == message_id)
    rows = db.session.execute(query.order_by(Delivery.id).limit(STUCK_CANDIDATES_PER_RUN)).all()
    candidates = [(Target(*row[:-1]), bool(row[-1])) for row in rows]
    lost = abandoned([(target.id, target.attempts) for target, timed_out in candidates if not timed_out])
    db.session.commit()  # end the reads: each recovery asks Twilio first
    return [target for target, timed_out in candidates if timed_out or target.id in lost]


def _fetch(sid: str) -> Any:
    """Twilio's message, or None when Twilio has no such message; throttling ends the run."""
    try:
        return get_client().messages(sid).fetch()
    except TwilioRestException as exc:
        if exc.status == 404:
            return None
        if exc.status == 429 or exc.status >= 500 or exc.status == 401:
            raise _StopRun(f"stopped early: {twilio_error_text(exc)}") from exc
        raise
    except requests.RequestException as exc:
        raise _StopRun(f"stopped early: {twilio_error_text(exc)}") from exc


def _reconcile_batch(batch: Sequence[Target], ages: Ages, pace: _Pace, report: Report) -> None:
    """Fetch each delivery of `batch` from Twilio, then apply the answers in one short transaction.

    No transaction is open while Twilio answers (`_targets` ended the read, the batch before
    committed): one held across the fetches would keep SQLite's write lock, which covers the whole
    database, or PostgreSQL's locks on the rows it wrote, for as long as Twilio takes. Callbacks
    arriving meanwhile would wait past Twilio's 15 s webhook timeout or fail with "database is
    locked", and Twilio retries neither. A run that throttling stops still applies what it fetched."""
    answers: list[tuple[Target, Any]] = []
    try:
        for delivery in batch:
            pace.wait()
            answers.append((delivery, _fetch_answer(delivery, report)))
    finally:
        for delivery, answer in answers:
            _apply_answer(delivery, answer, ages, report)
        db.session.commit()


def _fetch_answer(delivery: Target, report: Report) -> Any:
    """Twilio's message, None when Twilio has no such message, or the error Twilio answered."""
    report.checked += 1
    try:
        return _fetch(delivery.sid or "")
    except TwilioException as exc:
        return exc


def _apply_answer(delivery: Target, answer: Any, ages: Ages, report: Report) -> None:
    if isinstance(answer, TwilioException):
        report.errors.append(f"delivery {delivery.id} ({delivery.sid}): {twilio_error_text(answer)}")
        _check_later(delivery, ages)
    elif answer is None:
        report.errors.append(f"delivery {delivery.id}: Twilio has no message {delivery.sid}")
        _check_later(delivery, ages, MAX_RECHECK_SECONDS)
    elif not apply_twilio_message(delivery, answer, report):
        _check_later(delivery, ages)


def apply_twilio_message(delivery: Target, message: Any, report: Report) -> bool:
    """Apply a message fetched from Twilio to `delivery`; True when the delivery is now final.

    Only a forward move is applied: a status Twilio reports that we already passed (its
    `queued` while our job already said `sent`) is no news and adds no event."""
    status = str(message.status or "").lower()
    if status not in KNOWN:
        report.errors.append(f"delivery {delivery.id}: Twilio reports an unknown status {status!r}")
        return False
    before = delivery.status
    if not may_move(before, status):
        return is_final(before)
    code = message.error_code if status in FAILURES else None
    meaning = explain(code).meaning if status in FAILURES else None
    detail = f"Twilio reports {status}" + (f" ({code}: {meaning})" if code else "")
    detail += "; fetched by the reconciler because no status callback arrived"
    outcome = apply_status(
        delivery.id,
        status,
        source="reconciler",
        error_code=code,
        error_message=meaning,
        occurred_at=message.date_updated,
        payload=_payload(message),
        sid=message.sid,
        sender=message.messaging_service_sid or message.from_ or "",
        detail=detail,
    )
    if not outcome.moved:  # a callback got there between our read and our write
        return is_final(_current_status(delivery.id))
    report.changes.append(
        Change(delivery.id, delivery.to_number, before, status, f"{code}: {meaning}" if code else "fetched from Twilio")
    )
    return is_final(status)


def _current_status(delivery_id: int) -> str:
    return db.session.scalar(select(Delivery.status).where(Delivery.id == delivery_id)) or ""


def _payload(message: Any) -> dict[str, Any]:
    """The fields of Twilio's answer worth keeping in the timeline, in the callbacks' names."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "MessageSid": message.sid,
        "MessageStatus": message.status,
        "ErrorCode": message.error_code,
        "ErrorMessage": message.error_message,
        "DateSent": iso(message.date_sent),
        "DateUpdated": iso(message.date_updated),
        "Source": "GET Messages/{sid}",
    }


def _check_later(delivery: Target, ages: Ages, delay: float | None = None) -> None:
    """Back off: ask again after half the delivery's age (at least the base age, at most an hour),
    so a message whose carrier never sends a receipt costs a dozen fetches, not one per run."""
    now = utcnow()
    if delay is None:
        age = (now - delivery.created_at).total_seconds()
        delay = min(max(age / 2, ages.sent if delivery.status == "sent" else ages.pending), MAX_RECHECK_SECONDS)
    db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id)
        .values(reconcile_after=now + timedelta(seconds=delay))
        .execution_options(synchronize_session=False)
    )


def _look_up(app: Flask, stuck: Sequence[Target], pace: _Pace) -> dict[int, Any]:
    """What Twilio has for each stuck delivery: its message, None, or the exception the look-up
    raised. The look-ups run LOOKUP_THREADS at a time, still paced, each with no transaction open:
    one at a time (one or two Messages-list calls each) a run recovered about 3 a second, so a
    Redis that lost 600 retries kept them `sending` for minutes (bench/chaos.py)."""

    def one(delivery_id: int) -> Any:
        with app.app_context():
            try:
                return find_existing_message(delivery_id)
            except (TwilioException, requests.RequestException) as exc:
                return exc
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=max(min(LOOKUP_THREADS, len(stuck)), 1)) as pool:
        futures = {}
        for delivery in stuck:
            pace.wait()
            futures[delivery.id] = pool.submit(one, delivery.id)
        return {delivery_id: future.result() for delivery_id, future in futures.items()}


def _recover_stuck(delivery: Target, existing: Any, report: Report) -> None:
    """A worker died between claiming this delivery and storing Twilio's answer. Twilio may have
    the message (the request got there) or not: adopt it if so, else send it again.

    The dead attempt counts as a try of its round, like one that timed out: the re-send is the
    next try (not `attempts + 1`, which counts the claims of every round, operator Retries
    included), and when the dead attempt was the round's last, the delivery fails as the job
    would have failed it, with the dashboard's Retry to start a new round. `existing` is what
    _look_up found at Twilio."""
    report.checked += 1
    if isinstance(existing, Exception):  # the look-up failed: Twilio is throttling or unreachable
        raise _StopRun(f"stopped early: {twilio_error_text(existing)}") from existing
    if existing is not None:
        _adopt(delivery, existing, report)
        return
    # Touching updated_at makes the next run leave it alone while the new attempt waits for a
    # worker; the attempt claims the delivery by its attempt count, so a copy of it sends nothing.
    touched = (
        rows_changed(
            update(Delivery)
            .where(
                Delivery.id == delivery.id,
                Delivery.status == "sending",
                Delivery.attempts == delivery.attempts,
                Delivery.external_message_id.is_(None),
            )
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        == 1
    )
    if not touched:  # a job moved it since we read it: not stuck after all
        return
    # Without a recorded try number, every claim counts as a try: the budget is never exceeded.
    dead_try = claimed_try(delivery.id, delivery.attempts) or delivery.attempts
    budget = max_tries(current_app.config)
    why = "the worker sending this stopped before Twilio answered, and Twilio has no such message"
    if dead_try >= budget:
        apply_status(
            delivery.id,
            "failed",
            source="reconciler",
            error_message=why,
            dedupe=False,
            detail=f"{gave_up(dead_try)}: {why}",
            payload={"attempt": delivery.attempts, "retryable": True},
        )
        report.changes.append(
            Change(
                delivery.id,
                delivery.to_number,
                "sending",
                "failed",
                "its worker died mid-send on the last attempt and Twilio has no such message",
            )
        )
        return
    record_event(
        delivery.id, "retry", source="reconciler", detail=f"{why}: sending again, attempt {dead_try + 1} of {budget}"
    )
    db.session.commit()  # the event is in before the job can run
    schedule_retry(delivery.id, attempts=delivery.attempts, try_number=dead_try + 1, verify=True, delay=0)
    report.changes.append(
        Change(
            delivery.id,
            delivery.to_number,
            "sending",
            "enqueued again",
            "its worker died mid-send and Twilio has no such message",
        )
    )


def _adopt(delivery: Target, message: Any, report: Report) -> None:
    """Take the message Twilio already has as this delivery's, instead of sending a second one."""
    detail = (
        f"the worker sending this stopped before storing Twilio's answer; Twilio has the message "
        f"{message.sid}, adopted instead of sending again"
    )
    outcome = apply_status(
        delivery.id,
        "sent",
        source="reconciler",
        sid=message.sid,
        adopted=True,
        detail=detail,
        payload=_payload(message),
        dedupe=False,
    )
    if outcome.sid_held_by is not None:  # stored there since the look-up: nothing written, look again next run
        report.errors.append(
            f"delivery {delivery.id}: Twilio's message {message.sid} was taken by delivery "
            f"{outcome.sid_held_by} meanwhile; looking again on the next run"
        )
        return
    db.session.commit()  # the SID first: a callback parked from now on finds it (see pending.py)
    apply_pending(delivery.id, message.sid)
    report.changes.append(Change(delivery.id, delivery.to_number, "sending", "sent", f"adopted {message.sid}"))
    apply_twilio_message(replace(delivery, status=_current_status(delivery.id)), message, report)


def reconcile_periodic() -> dict[str, int]:
    """The worker's periodic task: one run, summarized for the job's result."""
    report = reconcile()
    return {"checked": report.checked, "changed": len(report.changes), "errors": len(report.errors)}
