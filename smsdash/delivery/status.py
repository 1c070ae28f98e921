"""The delivery state machine, shared by the send job, the status webhook and the reconciler.

Twilio's callbacks arrive out of order and repeat, so a status is applied only when it ranks
above the current one: queued < sending < sent < final. A final status (delivered,
undelivered, failed, canceled) is never left, except that `read` may follow `delivered`.
The move is one conditional UPDATE, so concurrent callbacks for one delivery cannot race:
the database decides which of them wins, and the loser changes nothing.

A `failed` or `canceled` we decide ourselves (the job gave up, a retry met a STOP, the reconciler
found a dead worker's send nowhere) is only a guess: an attempt that timed out may have reached
Twilio anyway. So a guess applies only while Twilio has said nothing (no SID stored, a status
below `sent`); once Twilio spoke, its status stands and the guess is kept as history only. And
the first observation that carries the message's SID proves Twilio has it: it moves the delivery
to at least `sent`, replacing a guess made before it; from then on the rules above hold.

The SID is unique. A SID another delivery already holds (a look-up adopted it) is not stored a
second time, and costs the caller's transaction nothing: the status is applied without it,
except for an adoption, which then writes nothing (the message is the other delivery's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Table, Update, and_, bindparam, exists, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from smsdash.delivery.optouts import ALL_SENDERS, record_opt_out
from smsdash.delivery.timeline import record_event
from smsdash.dialects import unique_clash_guard
from smsdash.extensions import db
from smsdash.models import Delivery, utcnow

log = logging.getLogger(__name__)

RANKS: dict[str, int] = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "canceled": 3,
    "partially_delivered": 3,
    "read": 4,
}
FINAL = frozenset({"delivered", "undelivered", "failed", "canceled", "partially_delivered", "read"})
FAILURES = frozenset({"undelivered", "failed"})
KNOWN = frozenset(RANKS)
# What a delivery is before Twilio said anything about it: the only statuses a guess may end.
UNSENT = tuple(sorted(s for s in KNOWN if RANKS[s] < RANKS["sent"]))
# Statuses we set without Twilio's word; with no SID stored, Twilio's first word replaces them.
UNHEARD = ("failed", "canceled")
# Twilio's error code for a recipient who replied STOP to the sender: the failure is an opt-out.
OPTED_OUT = 21610
# Statuses shown to operators, in the order a delivery moves through them.
DISPLAY_ORDER = ("queued", "sending", "sent", "delivered", "read", "undelivered", "failed", "canceled")


def is_final(status: str) -> bool:
    return status in FINAL


def may_move(current: str, new: str) -> bool:
    """True when a delivery in `current` may move to `new` (never backwards, never out of final)."""
    if new not in KNOWN or current == new:
        return False
    if current in FINAL:
        return current == "delivered" and new == "read"
    return RANKS[new] > RANKS[current]


def predecessors(new: str) -> tuple[str, ...]:
    """Every status from which `new` may be reached, for a conditional UPDATE's WHERE clause."""
    return tuple(sorted(s for s in KNOWN if may_move(s, new)))


@dataclass(frozen=True)
class Outcome:
    """What applying one status did: whether the delivery moved, whether an event was added,
    whether the SID given was stored (its waiting callbacks are the caller's to apply after the
    commit), and which other delivery holds that SID when it could not be."""

    moved: bool
    recorded: bool
    sid_stored: bool = False
    sid_held_by: int | None = None


_DELIVERIES: Table = Delivery.__table__  # typed here: mypy cannot see db.Model's attributes


def _timestamps(status: str) -> dict[str, Any]:
    """Timestamp columns for a move to `status`, bound to the `p_when` parameter.

    Callbacks skip steps and arrive out of order: a delivery can go straight from queued to
    `read`, and the `sent` callback that comes later moves nothing. A later status implies the
    earlier ones, so their columns are filled in if still empty (never overwritten: `read`
    keeps the time the message was delivered).
    """
    when = bindparam("p_when", type_=_DELIVERIES.c.sent_at.type)

    def first(column: Any) -> Any:
        return func.coalesce(column, when)

    if status == "sent":
        return {"sent_at": when}
    if status == "delivered":
        return {"delivered_at": when, "sent_at": first(_DELIVERIES.c.sent_at)}
    if status == "read":
        return {"delivered_at": first(_DELIVERIES.c.delivered_at), "sent_at": first(_DELIVERIES.c.sent_at)}
    if status in FAILURES:
        # A repeat that only brings the error code (see move_allowed) keeps the first report's time.
        return {"failed_at": first(_DELIVERIES.c.failed_at)}
    return {}


def move_values(status: str, with_error: bool) -> dict[str, Any]:
    """The SET clause of a move to `status`, bound to `p_now`, `p_when` and (`with_error`)
    `p_error_code`/`p_error_message`: shared with the webhook's one-statement path on PostgreSQL
    (known_callback.py), so both paths fill the same columns."""
    values: dict[str, Any] = {"status": status, "updated_at": bindparam("p_now"), **_timestamps(status)}
    if with_error:
        values.update(error_code=bindparam("p_error_code"), error_message=bindparam("p_error_message"))
    return values


def move_allowed(
    status: str, with_error: bool, spell: Callable[[str], Any] = lambda s: s, guess: bool = False
) -> ColumnElement[bool]:
    """The WHERE clause allowing a move to `status`: from one of its predecessors, or, for a
    failure that brings an error code, from the same failure recorded without one (Twilio's
    first copy of a failure can lack ErrorCode; the code is what tells the operator what to do).
    A `guess` (see is_guess) moves only while Twilio has said nothing: no SID, a status below `sent`.
    `spell` writes each status as the caller's statement needs it (known_callback.py inlines them)."""
    c = _DELIVERIES.c
    sources = [spell(s) for s in predecessors(status) if not guess or s in UNSENT]
    # No status leads to `queued`, `accepted` or `scheduled`: an empty IN would compile to a
    # placeholder that known_callback.py's prebuilt SQL string cannot carry.
    allowed: ColumnElement[bool] = c.status.in_(sources) if sources else false()
    if with_error and status in FAILURES:
        allowed = or_(allowed, and_(c.status == spell(status), c.error_code.is_(None)))
    if guess:
        allowed = and_(allowed, c.external_message_id.is_(None))
    return allowed


def is_guess(status: str, source: str, sid: str | None) -> bool:
    """True for a final status we decide without Twilio's word: a failure or cancel that comes
    with no SID and not from a Twilio callback (the job giving up or meeting a STOP, the
    reconciler failing a dead worker's send). Twilio's own word carries the SID, or is a callback."""
    return status in UNHEARD and sid is None and source != "twilio"


@cache
def _move_statement(status: str, with_error: bool, guess: bool) -> Update:
    """The conditional UPDATE for a move to `status`, built once: the webhook runs it for every
    callback, and a prebuilt core statement skips SQLAlchemy's per-call construction work."""
    return (
        update(_DELIVERIES)
        .where(_DELIVERIES.c.id == bindparam("p_id"), move_allowed(status, with_error, guess=guess))
        .values(move_values(status, with_error))
    )


def _accepted_at_least(status: str) -> str:
    """Twilio's status as the first word about a message: any status below `sent` still says
    Twilio accepted it, which is what `sent` means for us (the job records a create's `queued`
    answer as `sent` too)."""
    return status if RANKS[status] >= RANKS["sent"] else "sent"


@cache
def _first_word_statement(status: str) -> Update:
    """The UPDATE applying Twilio's first word about a message, once that word has stored the SID
    on a delivery holding a guess (UNHEARD) or still below `sent`: it replaces the guess with what
    Twilio says, or moves the delivery up to `sent`. The guess's error and time go unless Twilio
    failed the message too. The SID write before it holds the row (a lock on PostgreSQL, the one
    writer on SQLite), so the status this WHERE reads is still the one that write returned."""
    target = _accepted_at_least(status)
    values = move_values(target, with_error=True)
    values.update(failed_at=bindparam("p_when") if target in FAILURES else None)
    return (
        update(_DELIVERIES)
        .where(_DELIVERIES.c.id == bindparam("p_id"), _DELIVERIES.c.status.in_(UNHEARD + predecessors(target)))
        .values(values)
    )


_HOLDER = _DELIVERIES.alias("holder")
# Stores the SID on a delivery that has none, unless another delivery holds it (the key is unique),
# returning the delivery's status.
_STORE_SID = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.id == bindparam("p_id"),
        _DELIVERIES.c.external_message_id.is_(None),
        ~exists().where(_HOLDER.c.external_message_id == bindparam("p_sid")),
    )
    .values(external_message_id=bindparam("p_sid"))
    .returning(_DELIVERIES.c.status)
)
_SID_HOLDER = select(_DELIVERIES.c.id).where(
    _DELIVERIES.c.external_message_id == bindparam("p_sid"), _DELIVERIES.c.id != bindparam("p_id")
)
_CURRENT = select(_DELIVERIES.c.status, _DELIVERIES.c.external_message_id, _DELIVERIES.c.to_number).where(
    _DELIVERIES.c.id == bindparam("p_id")
)


@dataclass(frozen=True)
class _SidWrite:
    """What storing a SID did: the delivery's status when the SID went in (None: not stored), and
    the other delivery holding that SID, if one does."""

    stored_over: str | None
    holder: int | None


def _store_sid(delivery_id: int, sid: str) -> _SidWrite:
    """Store `sid` on the delivery if it has none; a clash with another delivery's SID writes
    nothing and leaves the caller's transaction usable.

    It runs after the status move, never before: writing the unique SID takes the row's strongest
    lock, which also blocks the foreign-key check of every concurrent event insert for the
    delivery. Before the move, a callback whose SID write waited for another's (and then found the
    SID there) would keep that lock while it inserts its event, and deadlock with a callback on
    the PostgreSQL fast path that has inserted the same event and waits for the row."""
    params = {"p_id": delivery_id, "p_sid": sid}
    try:
        with unique_clash_guard(db.session):
            row = db.session.connection().execute(_STORE_SID, params).first()
        if row is not None:
            return _SidWrite(row.status, None)
    except IntegrityError:  # PostgreSQL: another transaction stored it after our check, then committed
        pass
    return _SidWrite(None, _holder(delivery_id, sid))


def _holder(delivery_id: int, sid: str) -> int | None:
    return db.session.connection().execute(_SID_HOLDER, {"p_id": delivery_id, "p_sid": sid}).scalar()


def dedupe_key(source: str, status: str, error_code: int | None) -> str:
    """Twilio and the reconciler observe the same carrier facts, so they share one key space:
    a callback that arrives after the reconciler saw the same status adds no second event."""
    origin = "ext" if source in ("twilio", "reconciler") else source
    return f"{origin}:{status}:{error_code or ''}"


def apply_status(
    delivery_id: int,
    status: str,
    *,
    source: str,
    error_code: int | None = None,
    error_message: str | None = None,
    occurred_at: datetime | None = None,
    payload: dict[str, Any] | None = None,
    sid: str | None = None,
    adopted: bool = False,
    sender: str = ALL_SENDERS,
    detail: str | None = None,
    dedupe: bool = True,
) -> Outcome:
    """Move a delivery to `status` if the state machine allows it, and add its timeline event.

    Runs in the caller's transaction (the caller commits). The event is recorded even when the
    status does not move (a late `sent` after `delivered` is kept as history); with `dedupe`,
    the same status and error code seen again from the same origin adds nothing.
    `sid` is stored if the delivery has none yet: a callback may beat the send job's commit. If
    another delivery holds it, the status is applied without it; with `adopted` (the SID is one
    a look-up picked, not Twilio naming this delivery) nothing is written at all, unless the other
    delivery stored it in the instant between that check and the write.
    A failure with error 21610 records the recipient's opt-out of `sender` (the empty sender, when
    unknown, blocks every sender), whichever path brought it: webhook, pending inbox, reconciler, job.
    """
    if status not in KNOWN:
        raise ValueError(f"unknown message status {status!r}")
    db.session.flush()  # core statements skip the ORM's autoflush; pending ORM changes go first
    if adopted and sid and (holder := _holder(delivery_id, sid)) is not None:
        return Outcome(moved=False, recorded=False, sid_held_by=holder)
    now = utcnow()
    with_error = error_code is not None or error_message is not None
    params: dict[str, Any] = {"p_id": delivery_id, "p_now": now, "p_when": occurred_at or now}
    if with_error:
        params.update(p_error_code=error_code, p_error_message=error_message)
    guess = is_guess(status, source, sid)
    connection = db.session.connection()
    moved = connection.execute(_move_statement(status, with_error, guess), params).rowcount == 1
    written = _store_sid(delivery_id, sid) if sid else _SidWrite(None, None)
    if written.holder is not None:
        log.warning(
            "delivery %s: Twilio's message %s is already stored on delivery %s; its %s is applied without the SID",
            delivery_id,
            sid,
            written.holder,
            status,
        )
        detail = _noted(
            detail, f"the message {sid} is stored on delivery {written.holder}: applied here without its SID"
        )
    first_word = written.stored_over is not None and (
        written.stored_over in UNHEARD or RANKS[written.stored_over] < RANKS["sent"]
    )
    overruled = (
        first_word
        and connection.execute(
            _first_word_statement(status), {"p_error_code": None, "p_error_message": None, **params}
        ).rowcount
        == 1
    )
    if overruled and written.stored_over in UNHEARD and detail is None:
        detail = "Twilio has this message after all: its status replaces the one set before Twilio answered"
    if guess and not moved:
        detail = _refused_guess(delivery_id, detail)
    if error_code == OPTED_OUT and status in FAILURES:
        to_number = connection.execute(_CURRENT, {"p_id": delivery_id}).one().to_number
        record_opt_out(to_number, sender, source=f"twilio_{OPTED_OUT}", by="twilio")
    recorded = record_event(
        delivery_id,
        status,
        source=source,
        error_code=error_code,
        detail=detail,
        occurred_at=occurred_at,
        payload=payload,
        dedupe_key=dedupe_key(source, status, error_code) if dedupe else None,
    )
    return Outcome(
        moved=moved or overruled,
        recorded=recorded,
        sid_stored=written.stored_over is not None,
        sid_held_by=written.holder,
    )


def _refused_guess(delivery_id: int, detail: str | None) -> str | None:
    """The detail for a guess that moved nothing: when that is because Twilio has spoken (a SID is
    stored, or a status of Twilio's), the timeline says so beside what the guess was."""
    now = db.session.connection().execute(_CURRENT, {"p_id": delivery_id}).one()
    if now.external_message_id is None and now.status in (*UNSENT, *UNHEARD):
        return detail  # an earlier guess already ended it, or the delivery moved on meanwhile
    return _noted(detail, f"not applied: Twilio already reported this message ({now.status}), and its word stands")


def _noted(detail: str | None, note: str) -> str:
    return f"{detail}; {note}" if detail else note
