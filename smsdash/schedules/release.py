"""Releasing scheduled deliveries when their time comes: `scheduled` -> `queued`, then the one
enqueue path every first attempt takes.

The move is one conditional UPDATE (`WHERE status = 'scheduled' AND send_after <= now`), so the
database decides who releases what: two schedulers running the task at once each get a disjoint
set of rows (on PostgreSQL the second UPDATE waits on the first's row locks, then finds those
rows no longer `scheduled`). Released deliveries are committed as `queued` before anything
touches Redis, so a flushed Redis or no worker at the due time only delays them: the sweeper
(sending/queue.py) enqueues whatever the enqueue below could not.

A message held for approval (compose/approval.py) is not released: the due look-up skips every
message whose approval is "awaiting" or "rejected". That test reads the message as the statement
starts, so an approval committing meanwhile is seen at the next run at worst; it can never make
a delivery go twice, because the approval releases the due ones itself with the same
`status = 'scheduled'` test. A scheduled message still awaiting approval when its time comes does
not go at all: `expire_unapproved` cancels it, once, by a conditional UPDATE on the message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Row, exists, insert, select, update

from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message, utcnow
from smsdash.schedules.manage import note
from smsdash.sending.queue import enqueue_first_attempts

log = logging.getLogger(__name__)

# How often the worker's scheduler runs the release: a scheduled text goes out within this.
RELEASE_EVERY_SECONDS = 15
# The most deliveries one run releases; the next run (or this one's caller again) takes the rest.
RELEASE_LIMIT = 10_000
# Released later than this after its time, a delivery's timeline says how late, and why.
LATE_AFTER = timedelta(seconds=RELEASE_EVERY_SECONDS * 4)
# Approval states whose deliveries wait however late it is (compose/approval.py).
HELD_APPROVALS = ("awaiting", "rejected")
# The timeline note of a delivery canceled because its message was not approved in time.
EXPIRED_NOTE = "not sent: it was not approved before its scheduled time"


def release_due() -> int:
    """Release every scheduled delivery whose time has come, record it in each timeline, commit,
    then enqueue them. Runs periodically on the worker's scheduler; returns how many it released.
    Messages whose time came while they still awaited approval are canceled first."""
    expire_unapproved()
    now = utcnow()
    held = exists().where(Message.id == Delivery.message_id, Message.approval.in_(HELD_APPROVALS))
    due = (
        select(Delivery.id)
        .where(Delivery.status == "scheduled", Delivery.send_after <= now, ~held)
        .order_by(Delivery.id)
        .limit(RELEASE_LIMIT)
        .scalar_subquery()
    )
    released = queue_scheduled(Delivery.id.in_(due), now=now)
    if not released:
        db.session.rollback()
        return 0
    db.session.execute(
        insert(Event),
        [
            {
                "delivery_id": r.id,
                "event_type": "queued",
                "source": "app",
                "received_at": now,
                "detail": _detail(r.send_after, now),
            }
            for r in released
        ],
    )
    db.session.commit()
    log.info("released %d scheduled deliveries", len(released))
    enqueue_first_attempts([r.id for r in released])
    return len(released)


def queue_scheduled(*where: ColumnElement[bool], now: datetime) -> Sequence[Row[int, datetime | None]]:
    """Move the `scheduled` deliveries matching `where` to `queued`, in the caller's transaction;
    returns their (id, send_after). The release and an approval both release through this.

    The status test is always part of the statement (outside any subquery in `where`): it is what
    a concurrent release, cancel or edit is re-checked against once the row lock it waited for
    is released, so a delivery is released once."""
    return db.session.execute(
        update(Delivery)
        .where(*where, Delivery.status == "scheduled")
        .values(status="queued", enqueued_at=None, enqueued_job_id=None, updated_at=now)
        .returning(Delivery.id, Delivery.send_after)
        .execution_options(synchronize_session=False)
    ).all()


def expire_unapproved() -> int:
    """Cancel every scheduled message whose time has come while it still awaits approval: it is
    marked `approval="expired"` and each waiting delivery `canceled` with a note saying why.
    Commits; returns how many messages. A send now awaiting approval has no time and waits.

    The message moves first, by `WHERE approval = 'awaiting'`: an approval or rejection racing
    this finds it no longer awaiting (or this finds it no longer awaiting), never both."""
    now = utcnow()
    expired = list(
        db.session.scalars(
            update(Message)
            .where(Message.approval == "awaiting", Message.send_at.is_not(None), Message.send_at <= now)
            .values(approval="expired")
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not expired:
        db.session.rollback()
        return 0
    canceled = list(
        db.session.scalars(
            update(Delivery)
            .where(Delivery.message_id.in_(expired), Delivery.status == "scheduled")
            .values(status="canceled", updated_at=now)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    if canceled:
        note(canceled, "canceled", EXPIRED_NOTE)
    db.session.commit()
    log.info("%d message(s) not approved by their scheduled time: %d deliveries canceled", len(expired), len(canceled))
    return len(expired)


def _detail(due: datetime | None, now: datetime) -> str:
    late = now - due if due is not None else timedelta(0)  # the due look-up only finds rows with a time
    if late <= LATE_AFTER:
        return "released: its scheduled time came"
    return f"released {_duration(late)} late: no worker was running at its scheduled time {due:%Y-%m-%d %H:%M} UTC"


def _duration(delta: timedelta) -> str:
    """'3 min', '2 h 5 min', '1 d 4 h': how late, to the minute."""
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes or not (days or hours) else "",
    ]
    return " ".join(p for p in parts if p)
