"""Composing a message: one `comms_messages` row and a delivery per recipient, then the work.

Everything is committed before anything is enqueued, because the database is the source of
truth: if Redis is down, the message and its `queued` deliveries still exist, compose still
succeeds, and the worker's sweeper enqueues them later. Numbers that opted out of this sender
get a delivery too, `canceled` at once with an event saying why, so the operator sees who was
left out instead of a recipient silently missing.

A send to APPROVAL_THRESHOLD recipients or more is held for approval (compose/approval.py): its
deliveries wait as `scheduled`, exactly like a send later, and nothing is enqueued; the release
task leaves them alone until another operator approves the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import insert, update

from smsdash.audit.record import record
from smsdash.compose.personalise import Personalisation, Recipient, link_contacts, personalise
from smsdash.delivery.optouts import opted_out_among
from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message, User, utcnow
from smsdash.schedules.manage import claim, note, who
from smsdash.schedules.quiet_hours import Hold, describe_hold, holds
from smsdash.schedules.when import Later, describe
from smsdash.sending.queue import enqueue_first_attempts
from smsdash.twilio.messages_api import sender_identity

__all__ = ["ComposeRefused", "Recipient", "compose_message", "prepare", "rewrite_scheduled"]


class ComposeRefused(ValueError):
    """The message cannot be sent as it stands; `problems` says why, in the operator's words."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def prepare(
    body: str, recipients: Sequence[Recipient], sender: str | None = None
) -> tuple[Personalisation, Personalisation]:
    """Each recipient's text: (those to send to, those who opted out and get a canceled delivery).

    A number listed twice is kept once; a typed number that is a contact's is linked to it. Only
    the recipients who will be texted can stop the send: an opted-out one missing a field is
    recorded as canceled all the same."""
    unique: dict[str, Recipient] = {}
    for recipient in link_contacts(recipients):
        unique.setdefault(recipient.to_number, recipient)
    opted_out = opted_out_among(unique, sender if sender is not None else sender_identity())
    active = [r for r in unique.values() if r.to_number not in opted_out]
    return personalise(body, active), personalise(body, [r for r in unique.values() if r.to_number in opted_out])


def compose_message(
    body: str,
    recipients: Sequence[Recipient],
    author_id: int | None,
    template_id: int | None = None,
    later: Later | None = None,
    validity_seconds: int | None = None,
    ignore_quiet_hours: bool = False,
) -> Message:
    """Create a message and its deliveries, each with its recipient's own text, commit them,
    then enqueue the sends in batches.

    With `later`, the deliveries wait as `scheduled` (recipients and texts fixed now, as the
    operator saw them) and nothing is enqueued: the release task (schedules/release.py) queues
    them when their time comes. `validity_seconds` (1-36,000, checked by the caller) goes to
    Twilio as ValidityPeriod with every delivery: Twilio drops what it could not send in time.
    A recipient for whom the send time falls in QUIET_HOURS waits (`scheduled`) until they open,
    unless `ignore_quiet_hours`.

    When the recipients to be texted reach APPROVAL_THRESHOLD, the message is `approval="awaiting"`
    and its deliveries wait as `scheduled` (from its time, or from now for a send now) until
    compose/approval.py approves it. The compose is audited in the same transaction.

    Raises ComposeRefused, storing nothing, when any recipient's text cannot be sent (see
    `Personalisation.problems`). Returns the committed message; whether its work reached Redis
    now or reaches it through the sweeper later, every delivery is sent once.
    """
    active, opted_out = prepare(body, recipients)
    problems = active.problems() if active.rendered or not opted_out.rendered else []
    if problems:
        raise ComposeRefused(problems)
    now = utcnow()
    count = len(active.rendered) + len(opted_out.rendered)
    awaiting = needs_approval(len(active.rendered))
    held = (
        {}
        if ignore_quiet_hours
        else holds((r.recipient.to_number for r in active.rendered), later.at if later else now)
    )
    message = Message(
        body=body,
        author_id=author_id,
        recipient_count=count,
        created_at=now,
        template_id=template_id,
        send_at=later.at if later else None,
        send_zone=later.zone if later else None,
        validity_seconds=validity_seconds,
        ignore_quiet_hours=ignore_quiet_hours,
        approval="awaiting" if awaiting else None,
    )
    db.session.add(message)
    db.session.flush()
    rows: list[dict[str, Any]] = [
        {
            "message_id": message.id,
            "contact_id": r.recipient.contact_id,
            "to_number": r.recipient.to_number,
            "body": r.body,
            "status": "scheduled" if status == "queued" and (awaiting or r.recipient.to_number in held) else status,
            "send_after": _send_after(r.recipient.to_number, status, later, held, now if awaiting else None),
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for status, group in (("scheduled" if later else "queued", active), ("canceled", opted_out))
        for r in group.rendered
    ]
    inserted = (
        db.session.execute(
            insert(Delivery).returning(Delivery.id, Delivery.to_number, Delivery.status, sort_by_parameter_order=True),
            rows,
        ).all()
        if rows
        else []
    )
    events = [
        {"delivery_id": r.id, "event_type": r.status, "source": "app", "received_at": now, "detail": detail}
        for r in inserted
        for detail in _compose_notes(r.to_number, r.status, later, held, awaiting)
    ]
    if events:
        db.session.execute(insert(Event), events)
    record(
        "message.schedule" if later else "message.compose",
        "message",
        message.id,
        details={"recipients": count, "awaiting_approval": awaiting, "template_id": template_id},
    )
    db.session.commit()
    if not later and not awaiting:
        enqueue_first_attempts([r.id for r in inserted if r.status == "queued"])
    return message


def needs_approval(texted: int) -> bool:
    """True when a send to `texted` recipients must wait for a second operator (APPROVAL_THRESHOLD).
    Only those who will be texted count: opted-out numbers and repeats cost nothing."""
    threshold: int | None = current_app.config.get("APPROVAL_THRESHOLD")
    return threshold is not None and threshold > 0 and texted >= threshold


def _send_after(
    number: str, status: str, later: Later | None, held: dict[str, Hold], otherwise: datetime | None
) -> datetime | None:
    """When a composed delivery is released: its quiet-hours opening, else the chosen time, else
    `otherwise` (now, for a send now held for approval: due the moment it is approved)."""
    if status == "canceled":
        return None
    return held[number].until if number in held else later.at if later else otherwise


def _compose_notes(number: str, status: str, later: Later | None, held: dict[str, Hold], awaiting: bool) -> list[str]:
    """The first timeline notes of a composed delivery (none for one sent at once)."""
    if status == "canceled":
        return [f"not sent: {number} opted out (replied STOP) for this sender"]
    notes = [AWAITING_NOTE] if awaiting else []
    if number in held:
        notes.append(describe_hold(held[number]))
    elif later:
        notes.append(f"to be sent {describe(later.at, later.zone)}")
    return notes


AWAITING_NOTE = "awaiting approval: it goes out only after another operator approves the message"


def rewrite_scheduled(message_id: int, body: str, user: User | None) -> int:
    """Change a scheduled message's text before it goes out; commits, returns how many waiting
    deliveries got the new text.

    Each waiting recipient's text is rendered again the way compose renders it (placeholders
    from the contact; a spreadsheet row's values are not kept, so its own columns can no longer
    be used). Raises ComposeRefused when any of them cannot be sent, and schedules.manage's
    NotScheduled once nothing waits; either way nothing changes. An approved large send awaits
    approval again: the approver said yes to the old text, not to this one."""
    rows = claim(message_id)
    texts = personalise(body, [Recipient(r.to_number, r.contact_id) for r in rows])
    problems = texts.problems()
    if problems:
        db.session.rollback()
        raise ComposeRefused(problems)
    by_number = {r.recipient.to_number: r.body for r in texts.rendered}
    db.session.execute(update(Delivery), [{"id": r.id, "body": by_number[r.to_number]} for r in rows])
    again = db.session.execute(
        update(Message)
        .where(Message.id == message_id, Message.approval == "approved")
        .values(approval="awaiting", reviewed_by_id=None, reviewed_at=None)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.execute(update(Message).where(Message.id == message_id).values(body=body))
    note([r.id for r in rows], "scheduled", f"text changed by {who(user)}")
    if again:
        note([r.id for r in rows], "scheduled", AWAITING_NOTE)
    record(
        "message.edit",
        "message",
        message_id,
        details={"body": True, "deliveries": len(rows), **({"awaiting_approval_again": True} if again else {})},
        actor=user,
    )
    db.session.commit()
    return len(rows)
