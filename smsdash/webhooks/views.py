"""Twilio's webhooks: delivery status callbacks and inbound replies (kept for the inbox; STOP / START).

Both are public (no login, no CSRF token) and trusted only through `X-Twilio-Signature`
(signature.py). Twilio treats any 2xx as done and waits for the answer, so the handler answers
fast: on PostgreSQL the usual callback (a known delivery that has its SID) is one statement in
one round trip (known_callback.py); the rest take the general path through status.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from flask import Blueprint, Response, request
from sqlalchemy import bindparam, select

from smsdash.delivery.callbacks import MalformedCallback, StatusCallback, parse_status_callback
from smsdash.delivery.inbound import store_inbound
from smsdash.delivery.known_callback import apply_known
from smsdash.delivery.optouts import lift_opt_out, record_opt_out
from smsdash.delivery.pending import apply_pending, keep_pending
from smsdash.delivery.status import OPTED_OUT
from smsdash.extensions import csrf, db
from smsdash.models import Delivery
from smsdash.webhooks.signature import signature_rejection

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")
csrf.exempt(bp)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio's default opt-out keywords; the reply must be the keyword alone (any case).
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
OptOutAction = Literal["stop", "start"]
# Advanced Opt-Out's OptOutType values; HELP (or a value Twilio adds) changes no opt-out.
OPT_OUT_TYPES: dict[str, OptOutAction] = {"STOP": "stop", "START": "start"}


def _forbidden(reason: str) -> Response:
    # The log names the path, the reason and the caller; never the token or the signature.
    log.warning("Rejected Twilio webhook %s from %s: %s", request.path, request.remote_addr, reason)
    return Response("Forbidden: the request is not signed by Twilio for this URL.\n", 403, mimetype="text/plain")


def _bad_request(reason: str) -> Response:
    log.warning("Malformed Twilio webhook %s: %s", request.path, reason)
    return Response(f"Bad request: {reason}\n", 400, mimetype="text/plain")


_DELIVERIES = Delivery.__table__
_BY_ID = select(_DELIVERIES.c.id, _DELIVERIES.c.external_message_id).where(_DELIVERIES.c.id == bindparam("p_id"))
_BY_SID = select(_DELIVERIES.c.id, _DELIVERIES.c.external_message_id).where(
    _DELIVERIES.c.external_message_id == bindparam("p_sid")
)


def _find_delivery(delivery_ref: int | None, sid: str) -> tuple[int, str | None] | None:
    """(id, stored SID) of the delivery the callback is about: by our id from the URL, else by SID.

    Prebuilt core statements on the session's connection: this runs for every callback."""
    connection = db.session.connection()
    row = connection.execute(_BY_ID, {"p_id": delivery_ref}).first() if delivery_ref is not None else None
    if row is None:
        row = connection.execute(_BY_SID, {"p_sid": sid}).first()
    return (row.id, row.external_message_id) if row is not None else None


def _keep_until_known(callback: StatusCallback) -> None:
    """Park a callback that matches nothing; apply it at once if its SID appeared meanwhile.

    The send job applies pending callbacks right after committing a SID. If that happened
    between our lookup and our commit, the job saw nothing waiting, so we look once more.
    """
    keep_pending(callback.sid, callback.status, callback.payload)
    db.session.commit()
    found = _find_delivery(None, callback.sid)
    if found is not None:
        apply_pending(found[0], callback.sid)
        db.session.commit()


def _delivery_ref(raw: str | None) -> int | None:
    """Our delivery id from the callback URL's `d`, if it is one (ASCII digits, fits an INTEGER)."""
    if raw and raw.isascii() and raw.isdigit() and int(raw) < 2**31:
        return int(raw)
    return None


def _opt_out_action(form: Mapping[str, str]) -> OptOutAction | None:
    """What a reply does to the recipient's opt-out: Twilio's `OptOutType` when it sent one, else
    the default keywords.

    A Messaging Service with Advanced Opt-Out has keywords of its own (other languages, removed
    defaults, words moved to HELP) and applies them itself; it tells us which one matched in
    `OptOutType`, so that, not our keyword list, keeps our opt-outs the same as Twilio's."""
    declared = (form.get("OptOutType") or "").strip().upper()
    if declared:
        return OPT_OUT_TYPES.get(declared)
    keyword = (form.get("Body") or "").strip().strip(".!").upper()
    return "stop" if keyword in STOP_WORDS else "start" if keyword in START_WORDS else None


@bp.post("/status")
def status() -> Response:
    """Apply one status callback. 403: not signed by Twilio; 400: malformed; 200: applied or kept."""
    reason = signature_rejection()
    if reason:
        return _forbidden(reason)
    try:
        callback = parse_status_callback(request.form)
    except MalformedCallback as exc:
        return _bad_request(str(exc))
    raw_ref = request.args.get("d")
    delivery_ref = _delivery_ref(raw_ref)
    if raw_ref is not None and delivery_ref is None:
        return _bad_request(f"delivery id {raw_ref!r} is not a number")

    engine = db.engine
    if (
        engine.dialect.name == "postgresql"
        and callback.error_code != OPTED_OUT  # the general path records the opt-out
        and apply_known(engine, callback, delivery_ref) is not None
    ):
        return Response("", 200)  # committed: the usual case, in one round trip
    found = _find_delivery(delivery_ref, callback.sid)
    if found is None:
        _keep_until_known(callback)
        return Response("", 200)
    delivery_id, stored_sid = found
    outcome = callback.apply(delivery_id, record_sid=stored_sid is None)
    db.session.commit()
    if outcome.sid_stored:
        # This callback stored the SID. Its waiting callbacks are looked for only now that the SID
        # is committed, as the send job does, so one parked meanwhile cannot be missed by both.
        apply_pending(delivery_id, callback.sid)
        db.session.commit()
    return Response("", 200)


@bp.post("/inbound")
def inbound() -> Response:
    """Keep the reply (once per MessageSid, matched to its contact and delivery), record STOP-type
    replies as opt-outs and lift them on START-type ones (Twilio's OptOutType decides when
    present), all in one short transaction; answer empty TwiML.

    The opt-out is kept for the number the reply was sent to and, when the reply came through a
    Messaging Service, for the service too: the send job may send from either. A repeated webhook
    stores nothing twice, and applying its opt-out again changes nothing.
    """
    reason = signature_rejection()
    if reason:
        return _forbidden(reason)
    phone = (request.form.get("From") or "").strip()
    action = _opt_out_action(request.form)
    senders = {s.strip() for s in (request.form.get("To"), request.form.get("MessagingServiceSid")) if s}
    store_inbound(request.form, action)
    if phone and senders and action:
        for sender in senders:
            if action == "stop":
                record_opt_out(phone, sender, "inbound", by=f"recipient {phone}")
            else:
                lift_opt_out(phone, sender, by=f"recipient {phone}")
        log.info("Inbound %s reply from a recipient: opt-out %s", action, "recorded" if action == "stop" else "lifted")
    db.session.commit()
    return Response(EMPTY_TWIML, 200, mimetype="text/xml")
