"""Keeping a reply: every inbound SMS/MMS stored once, with the contact and delivery it answers.

Twilio retries an inbound webhook it got no answer to, so the row is keyed by MessageSid and
written with insert-or-ignore: a repeat stores nothing and fails nothing. Matching is two
indexed reads (the contact with that phone, the latest delivery to it), done before the insert
in the same short transaction, so the inbox never has to guess later and the webhook never
calls out. Runs in the caller's transaction; the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from smsdash.dialects import insert_or_ignore
from smsdash.extensions import db
from smsdash.models import Contact, Delivery, InboundMessage, utcnow

# Twilio sends at most 10 media per MMS (MediaUrl0..MediaUrl9).
MAX_MEDIA = 10


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str


def media_of(form: Mapping[str, str]) -> list[Media]:
    """The attachments an inbound webhook lists (NumMedia, MediaUrlN, MediaContentTypeN)."""
    raw = (form.get("NumMedia") or "0").strip()
    count = min(int(raw), MAX_MEDIA) if raw.isascii() and raw.isdigit() else 0
    found = [
        Media(form.get(f"MediaUrl{n}", ""), form.get(f"MediaContentType{n}", "") or "application/octet-stream")
        for n in range(count)
    ]
    return [m for m in found if m.url]


def answered_delivery(phone: str) -> tuple[int, int] | tuple[None, None]:
    """(delivery id, message id) of the delivery a reply from `phone` most likely answers: the
    latest one we sent to it.

    Deliveries record no sender (every send uses the configured sender identity), so "from that
    sender" is every delivery; a canceled one never reached the phone, so it is not answered."""
    row = db.session.execute(
        select(Delivery.id, Delivery.message_id)
        .where(Delivery.to_number == phone, Delivery.status != "canceled")
        .order_by(Delivery.id.desc())
        .limit(1)
    ).first()
    return (row.id, row.message_id) if row is not None else (None, None)


@dataclass(frozen=True)
class Replies:
    """The replies one delivery got: how many, and when the first came."""

    count: int
    first_at: datetime

    def after(self, since: datetime) -> str:
        """How long after `since` (the delivery's receipt) the first reply came, as people say it."""
        seconds = max(int((self.first_at - since).total_seconds()), 0)
        if seconds < 60:
            return f"{seconds} s"
        if seconds < 3600:
            return f"{seconds // 60} min"
        if seconds < 86400:
            return f"{seconds // 3600} h {seconds % 3600 // 60} min"
        return f"{seconds // 86400} d"


def replies_to(delivery_ids: Iterable[int]) -> dict[int, Replies]:
    """The replies each of these deliveries got, from one query over the delivery_id index;
    a delivery with none is absent."""
    ids = list(set(delivery_ids))
    if not ids:
        return {}
    rows = db.session.execute(
        select(InboundMessage.delivery_id, func.count(), func.min(InboundMessage.received_at))
        .where(InboundMessage.delivery_id.in_(ids))
        .group_by(InboundMessage.delivery_id)
    )
    # The IN list leaves no NULL delivery_id; the check says so to the type checker too.
    return {delivery_id: Replies(n, first) for delivery_id, n, first in rows if delivery_id is not None}


def reply_counts(message_id: int) -> dict[int, int]:
    """How many replies each delivery of a message got (only those that got one), for the export."""
    rows = db.session.execute(
        select(InboundMessage.delivery_id, func.count())
        .where(InboundMessage.message_id == message_id, InboundMessage.delivery_id.is_not(None))
        .group_by(InboundMessage.delivery_id)
    )
    return {delivery_id: n for delivery_id, n in rows if delivery_id is not None}


def store_inbound(form: Mapping[str, str], opt_out: str | None) -> bool:
    """Store the reply this webhook carries; False if its MessageSid was already stored (or it
    has none, which Twilio never sends: there would be nothing to keep it once by)."""
    sid = (form.get("MessageSid") or "").strip()
    phone = (form.get("From") or "").strip()
    if not sid or not phone:
        return False
    media = media_of(form)
    delivery_id, message_id = answered_delivery(phone)
    table = InboundMessage.__table__
    stmt = insert_or_ignore(table, db.session.get_bind().dialect.name).values(
        message_sid=sid,
        from_number=phone,
        to_number=(form.get("To") or "").strip(),
        messaging_service_sid=(form.get("MessagingServiceSid") or "").strip() or None,
        body=form.get("Body") or "",
        num_media=len(media),
        media=[{"url": m.url, "content_type": m.content_type} for m in media],
        opt_out=opt_out,
        contact_id=db.session.scalar(select(Contact.id).where(Contact.phone == phone)),
        delivery_id=delivery_id,
        message_id=message_id,
        received_at=utcnow(),
    )
    return db.session.execute(stmt.returning(table.c.id)).first() is not None
