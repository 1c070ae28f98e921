"""The pending inbox: status callbacks that matched no delivery yet, applied when their SID appears.

Most callbacks carry our delivery id in their URL, so they always match. The ones that don't
(a Messaging Service's own callback, or a callback that beat the send job's commit) wait here,
and whatever stores a SID (the send job, the reconciler's adoption, a webhook callback that
carries our delivery id) calls `apply_pending` right after committing it. That call runs on
every send, so when nothing waits it costs one indexed query and nothing more. A periodic
`sweep` applies what a crash between that commit and that call left waiting, and drops old
entries, so the inbox stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Delete, Select, and_, delete, insert, or_, select, update

from smsdash.delivery.callbacks import MalformedCallback, parse_status_callback
from smsdash.extensions import db, rows_changed
from smsdash.models import Delivery, PendingCallback, utcnow

log = logging.getLogger(__name__)

# Applied entries are history only (the delivery's events keep what they said). Unmatched ones
# this old are for messages this app will never store: another app's on the same account or
# Messaging Service (whose callbacks would otherwise pile up forever), or a send whose worker died
# and that the reconciler gave up on (RECONCILE_GIVE_UP_SECONDS, 2 days by default).
KEEP_APPLIED = timedelta(hours=1)
KEEP_UNMATCHED = timedelta(days=7)
SWEEP_LIMIT = 1000


def keep_pending(sid: str, status: str, payload: dict[str, Any]) -> None:
    """Store a callback that matched no delivery, in the caller's transaction."""
    db.session.execute(
        insert(PendingCallback).values(message_sid=sid, status=status, payload=payload, received_at=utcnow())
    )


def _claim(pending_id: int) -> bool:
    """Mark one entry applied; False if someone else (a concurrent webhook) already did."""
    claimed = rows_changed(
        update(PendingCallback)
        .where(PendingCallback.id == pending_id, PendingCallback.applied_at.is_(None))
        .values(applied_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return claimed == 1


def apply_pending(delivery_id: int, sid: str) -> int:
    """Apply every waiting callback for `sid` to `delivery_id`; return how many were applied.

    Runs in the caller's transaction (the caller commits). Entries are claimed one by one with
    a conditional UPDATE, so two callers racing over the same SID apply each entry once; the
    state machine ignores the order they arrive in.
    """
    waiting = db.session.execute(
        select(PendingCallback.id, PendingCallback.payload)
        .where(PendingCallback.message_sid == sid, PendingCallback.applied_at.is_(None))
        .order_by(PendingCallback.id)
    ).all()
    applied = 0
    for pending_id, payload in waiting:
        if not _claim(pending_id):
            continue
        try:
            callback = parse_status_callback(payload)
        except MalformedCallback:  # only well-formed callbacks are kept; this guards old rows
            continue
        callback.apply(delivery_id, record_sid=True)
        applied += 1
    return applied


def unmatched(older_than: timedelta, limit: int = 100) -> Sequence[PendingCallback]:
    """Entries still unmatched after `older_than`, oldest first: callbacks for messages we never
    stored (sent from elsewhere on the same account, or lost by a crashed job), for operators."""
    cutoff: datetime = utcnow() - older_than
    return db.session.scalars(
        select(PendingCallback)
        .where(PendingCallback.applied_at.is_(None), PendingCallback.received_at < cutoff)
        .order_by(PendingCallback.received_at)
        .limit(limit)
    ).all()


def sweep() -> dict[str, int]:
    """Periodic task: apply waiting callbacks whose SID a delivery now holds, then drop old entries.

    Whatever stores a SID applies its waiting callbacks right after committing it; a crash (or a
    lost database connection) between the two leaves them waiting with nobody to look again,
    and no later callback for that SID would bring them back. Commits."""
    matched = db.session.execute(waiting_with_sid_known()).all()
    applied = sum(apply_pending(delivery_id, sid) for delivery_id, sid in matched)
    db.session.commit()
    dropped = rows_changed(expired(utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    if applied or dropped:
        log.info("pending inbox: applied %d waiting callbacks, dropped %d old entries", applied, dropped)
    return {"applied": applied, "dropped": dropped}


def waiting_with_sid_known() -> Select[int, str]:
    """Waiting entries whose SID a delivery now holds: read through the partial index of waiting
    entries (applied_at NULL), so the sweep's cost follows the inbox's waiting few, not its size."""
    # The join on the inbox's SID (NOT NULL) leaves no delivery without one: the SID is a str.
    return cast(
        "Select[int, str]",
        select(Delivery.id, Delivery.external_message_id)
        .distinct()
        .join(PendingCallback, PendingCallback.message_sid == Delivery.external_message_id)
        .where(PendingCallback.applied_at.is_(None))
        .limit(SWEEP_LIMIT),
    )


def expired(now: datetime) -> Delete:
    """Entries past retention: applied ones after KEEP_APPLIED, unmatched ones after KEEP_UNMATCHED."""
    return delete(PendingCallback).where(
        or_(
            and_(PendingCallback.applied_at.is_not(None), PendingCallback.applied_at < now - KEEP_APPLIED),
            and_(PendingCallback.applied_at.is_(None), PendingCallback.received_at < now - KEEP_UNMATCHED),
        )
    )
