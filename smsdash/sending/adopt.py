"""Finding a message Twilio already has, so a retry never sends a delivery twice.

Messages create has no idempotency key: when an attempt timed out after Twilio accepted it, or a
worker died mid-request, the message may exist at Twilio with no SID on our side. Before any
re-send (the job's retry, the reconciler's recovery), Twilio's Messages list is searched for it,
and a match is adopted instead of sending again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Executable, Row, select
from twilio.rest.api.v2010.account.message import MessageInstance

from smsdash.extensions import db
from smsdash.models import Delivery
from smsdash.sms.smart_encoding import comparable
from smsdash.twilio.client import get_client

# Clock skew allowed between us and Twilio when matching an earlier attempt's message.
CLOCK_SKEW = timedelta(minutes=2)


def _read(statement: Executable) -> list[Row[*tuple[Any, ...]]]:
    """Rows of `statement`, read on a connection of its own that goes back to the pool at once.

    The look-up calls Twilio next, and no transaction may stay open meanwhile: a session's read
    would, and on PostgreSQL its connection would idle in transaction until Twilio answered."""
    with db.engine.connect() as connection:
        return list(connection.execute(statement))


def find_existing_message(delivery_id: int) -> MessageInstance | None:
    """The message Twilio created for the delivery on an attempt we never heard back from, if any.

    Messages create has no idempotency key, so before anything re-sends a delivery whose last
    attempt may have reached Twilio, it asks Twilio's Messages list (filtered by To, From and
    date sent) for an outbound message with the body this delivery was sent (its own text, with
    its placeholders filled in), created since the delivery was, whose SID no other delivery holds."""
    [row] = _read(select(Delivery.to_number, Delivery.body, Delivery.created_at).where(Delivery.id == delivery_id))
    return find_existing(delivery_id, row.to_number, row.body, row.created_at)


def find_existing(delivery_id: int, to: str, body: str, created_at: datetime) -> MessageInstance | None:
    config = current_app.config
    service_sid = config.get("TWILIO_MESSAGING_SERVICE_SID") or ""
    filters: dict[str, Any] = {"to": to}
    if not service_sid:
        # Through a Messaging Service, Twilio picks the From number, so only To can filter.
        filters["from_"] = config.get("TWILIO_FROM_NUMBER") or ""
    since = created_at - CLOCK_SKEW
    midnight = since.replace(hour=0, minute=0, second=0, microsecond=0)
    client = get_client()
    candidates = client.messages.list(date_sent_after=midnight, limit=50, **filters)
    match = _pick(candidates, delivery_id, body, since, service_sid)
    if match is None:
        # A message still waiting in Twilio's queue has no date sent yet, so the date filter
        # hides it: look again at the newest messages to this number without one.
        match = _pick(client.messages.list(limit=20, **filters), delivery_id, body, since, service_sid)
    return match


def _pick(
    candidates: list[MessageInstance], delivery_id: int, body: str, since: datetime, service_sid: str
) -> MessageInstance | None:
    # Twilio's copy may be smart-encoded (a Messaging Service swaps curly quotes, long dashes and
    # odd spaces for GSM-7 ones) and, on a trial account, carries a prefix before our text.
    ours = comparable(body)
    fitting = [
        m
        for m in candidates
        if (m.direction or "outbound-api").startswith("outbound")
        and comparable(m.body or "").endswith(ours)
        and (m.date_created is None or m.date_created >= since)
        and (not service_sid or m.messaging_service_sid == service_sid)
    ]
    if not fitting:
        return None
    # A SID this delivery holds is still ours: its callback (which carries our id) may have stored
    # it while we were asking Twilio, and skipping it would send the message a second time.
    taken = {
        row.external_message_id
        for row in _read(
            select(Delivery.external_message_id).where(
                Delivery.external_message_id.in_([m.sid for m in fitting]), Delivery.id != delivery_id
            )
        )
    }
    for message in fitting:
        if message.sid not in taken:
            return message
    return None
