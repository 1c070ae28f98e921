"""Approving or rejecting a large send: a second operator's yes before it goes out.

compose_message holds a message to APPROVAL_THRESHOLD recipients or more (`approval="awaiting"`,
its deliveries `scheduled`). Another operator with the send permission approves it (the deliveries
already due are released at once, the rest wait for their time like any scheduled send) or rejects
it with a reason (every waiting delivery canceled). Its author may do neither: a second pair of
eyes is the point, and the author can already cancel it (schedules/manage.py).

It lives in compose, not schedules: the rule reads the operator's role (auth/roles.py, a feature
package), which the schedules layer below the features may not import.

Each decision is one conditional UPDATE of the message (`WHERE approval = 'awaiting'` with a
delivery still waiting): of two approvers at once, or an approval racing a rejection or the expiry
of a scheduled one (schedules/release.py), exactly one wins and the other changes nothing and is
told why. The deliveries then move by `status = 'scheduled'`, the test the release and a cancel
make, so none goes twice. Everything is committed before anything reaches Redis.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import exists, func, or_, select, update

from smsdash.audit.record import record
from smsdash.auth.roles import REFUSALS, role_can
from smsdash.extensions import db
from smsdash.models import Delivery, Message, User, utcnow
from smsdash.schedules.manage import note, who
from smsdash.schedules.release import queue_scheduled
from smsdash.sending.queue import enqueue_first_attempts

# A rejection's reason is shown on the message page and kept in the audit log: a sentence or two.
REASON_MAX_LENGTH = 500


class ApprovalRefused(ValueError):
    """The decision cannot be made as asked; the text says why, in an operator's words."""


class OwnMessage(ApprovalRefused):
    """The operator composed the message: approving it themselves would defeat the rule."""

    def __init__(self) -> None:
        super().__init__("You composed this message, so another operator must approve or reject it.")


def approve(message_id: int, user: User) -> int:
    """Approve a message awaiting approval; commits, enqueues what is due, returns how many
    deliveries were released now (0 for a scheduled one: it goes at its time).

    Raises OwnMessage for its author, ApprovalRefused without the send permission, when it is
    not awaiting approval (any more), or when its scheduled time has passed (it will not go)."""
    now = _decide(message_id, user, "approved")
    released = [r.id for r in queue_scheduled(Delivery.message_id == message_id, Delivery.send_after <= now, now=now)]
    if released:
        note(released, "queued", f"released: approved by {user.email}")
    later = list(
        db.session.scalars(select(Delivery.id).where(Delivery.message_id == message_id, Delivery.status == "scheduled"))
    )
    if later:
        note(later, "scheduled", f"approved by {user.email}: waits for its time")
    record(
        "message.approve", "message", message_id, details={"released": len(released), "waiting": len(later)}, actor=user
    )
    db.session.commit()
    enqueue_first_attempts(released)
    return len(released)


def reject(message_id: int, user: User, reason: str) -> int:
    """Reject a message awaiting approval with a reason (required, at most REASON_MAX_LENGTH
    characters): every waiting delivery is canceled with the reason in its timeline. Commits;
    returns how many were canceled. Refused as `approve` is, the author included: the author
    who changed their mind cancels it instead."""
    reason = (reason or "").strip()
    if not reason:
        raise ApprovalRefused("Give a reason for rejecting it: the author sees it on the message page.")
    if len(reason) > REASON_MAX_LENGTH:
        raise ApprovalRefused(f"Keep the reason to {REASON_MAX_LENGTH} characters (it has {len(reason)}).")
    now = _decide(message_id, user, "rejected", reason)
    canceled = list(
        db.session.scalars(
            update(Delivery)
            .where(Delivery.message_id == message_id, Delivery.status == "scheduled")
            .values(status="canceled", updated_at=now)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    note(canceled, "canceled", f"not sent: rejected by {user.email}: {reason}")
    record("message.reject", "message", message_id, details={"reason": reason, "canceled": len(canceled)}, actor=user)
    db.session.commit()
    return len(canceled)


def _decide(
    message_id: int, user: User, decision: Literal["approved", "rejected"], reason: str | None = None
) -> datetime:
    """Check who decides, then move the message out of "awaiting" if it still is (one conditional
    UPDATE, in a transaction the caller commits); returns the decision's time."""
    message = db.session.get(Message, message_id)
    if message is None:
        raise ApprovalRefused(f"Message #{message_id} does not exist.")
    if message.author_id is not None and message.author_id == user.id:
        raise OwnMessage()
    if not role_can(user.role, "send"):
        raise ApprovalRefused(REFUSALS["send"])
    now = utcnow()
    waiting = exists().where(Delivery.message_id == Message.id, Delivery.status == "scheduled")
    conditions = [Message.id == message_id, Message.approval == "awaiting", waiting]
    if decision == "approved":  # a scheduled message approved after its time would go late: it expires instead
        conditions.append(or_(Message.send_at.is_(None), Message.send_at > now))
    won = db.session.execute(
        update(Message)
        .where(*conditions)
        .values(approval=decision, reviewed_by_id=user.id, reviewed_at=now, review_reason=reason)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    ).first()
    if won is None:
        db.session.rollback()
        raise ApprovalRefused(_why_not(message_id, now))
    db.session.expire(message)
    return now


def _why_not(message_id: int, now: datetime) -> str:
    """Why a decision found nothing to decide, read after the race was lost."""
    message = db.session.get(Message, message_id)
    assert message is not None
    by = who(message.reviewed_by) if message.reviewed_by_id else "another operator"
    if message.approval == "approved":
        return f"Message #{message_id} was already approved, by {by}."
    if message.approval == "rejected":
        return f"Message #{message_id} was already rejected, by {by}."
    if message.approval == "expired" or (message.approval == "awaiting" and message.send_at and message.send_at <= now):
        return f"Message #{message_id} was not approved before its scheduled time, so it will not be sent."
    if message.approval is None:
        return f"Message #{message_id} did not need approval."
    return f"Nothing of message #{message_id} is waiting any more: it was canceled."


def awaiting_note(message: Message) -> str | None:
    """What compose and `sms send` say about a message held for approval (None when it is not)."""
    if message.approval != "awaiting":
        return None
    count = db.session.scalar(
        select(func.count()).where(Delivery.message_id == message.id, Delivery.status == "scheduled")
    )
    return (
        f"Awaiting approval: message #{message.id} goes to {count} recipients, so nothing is sent until "
        "another operator approves it on the message page."
    )
