"""Releasing scheduled deliveries when their time comes: `scheduled` -> `queued`, then the one
enqueue path every first attempt takes.

The move is one conditional UPDATE (`WHERE status = 'scheduled' AND send_after <= now`), so the
database decides who releases what: two schedulers running the task at once each get a disjoint
set of rows (on PostgreSQL the second UPDATE waits on the first's row locks, then finds those
rows no longer `scheduled`). Released deliveries are committed as `queued` before anything
touches Redis, so a flushed Redis or no worker at the due time only delays them: the sweeper
(sending/queue.py) enqueues whatever the enqueue below could not.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update

from smsdash.extensions import db
from smsdash.models import Delivery, Event, utcnow
from smsdash.sending.queue import enqueue_first_attempts

log = logging.getLogger(__name__)

# How often the worker's scheduler runs the release: a scheduled text goes out within this.
RELEASE_EVERY_SECONDS = 15
# The most deliveries one run releases; the next run (or this one's caller again) takes the rest.
RELEASE_LIMIT = 10_000
# Released later than this after its time, a delivery's timeline says how late, and why.
LATE_AFTER = timedelta(seconds=RELEASE_EVERY_SECONDS * 4)


def release_due() -> int:
    """Release every scheduled delivery whose time has come, record it in each timeline, commit,
    then enqueue them. Runs periodically on the worker's scheduler; returns how many it released."""
    now = utcnow()
    due = (
        select(Delivery.id)
        .where(Delivery.status == "scheduled", Delivery.send_after <= now)
        .order_by(Delivery.id)
        .limit(RELEASE_LIMIT)
        .scalar_subquery()
    )
    released = db.session.execute(
        update(Delivery)
        # The status test is repeated outside the subquery: it is what a concurrent release,
        # cancel or edit is re-checked against once the row lock it waited for is released.
        .where(Delivery.id.in_(due), Delivery.status == "scheduled")
        .values(status="queued", enqueued_at=None, enqueued_job_id=None, updated_at=now)
        .returning(Delivery.id, Delivery.send_after)
        .execution_options(synchronize_session=False)
    ).all()
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


def _detail(due: datetime, now: datetime) -> str:
    late = now - due
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
