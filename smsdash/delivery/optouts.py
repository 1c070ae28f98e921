"""Opt-outs: numbers that texted STOP (or that Twilio refused with 21610) must not be texted again.

An opt-out belongs to a sender (the From number or Messaging Service SID the STOP was sent to),
because carriers scope STOP to the sender; a row with the empty sender blocks every sender.
All functions run in the caller's transaction; the caller commits. A change is audited there
too (optout.add / optout.remove), named for who caused it: no operator does, so `by` says who.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select

from smsdash.audit.record import record
from smsdash.dialects import insert_or_ignore
from smsdash.extensions import db
from smsdash.models import OptOut, utcnow

ALL_SENDERS = ""


def _senders(sender: str) -> tuple[str, ...]:
    return (ALL_SENDERS,) if sender == ALL_SENDERS else (ALL_SENDERS, sender)


def is_opted_out(phone: str, sender: str = ALL_SENDERS) -> bool:
    """True if `phone` opted out of `sender` or of every sender."""
    row = db.session.execute(
        select(OptOut.id).where(OptOut.phone == phone, OptOut.sender.in_(_senders(sender))).limit(1)
    ).first()
    return row is not None


def opted_out_among(phones: Iterable[str], sender: str = ALL_SENDERS) -> set[str]:
    """The subset of `phones` that opted out of `sender` (or of every sender), in one query."""
    wanted = set(phones)
    if not wanted:
        return set()
    rows = db.session.execute(select(OptOut.phone).where(OptOut.phone.in_(wanted), OptOut.sender.in_(_senders(sender))))
    return {phone for (phone,) in rows}


def record_opt_out(phone: str, sender: str, source: str, *, by: str | None = None) -> bool:
    """Record that `phone` opted out of `sender`; return False if it already had.

    `by` is the audit entry's actor ("recipient +15551234567", "twilio"); without it the entry
    names the operator or command line running this. A repeat records no entry: nothing changed.

    Insert-or-ignore on the (phone, sender) unique key, so a repeated STOP (or a STOP racing a
    21610 from the send job) records once and neither fails. RETURNING tells whether a row went
    in: through the ORM session an INSERT's rowcount is -1 on PostgreSQL.
    """
    table = OptOut.__table__
    stmt = insert_or_ignore(table, db.session.get_bind().dialect.name).values(
        phone=phone, sender=sender, source=source, created_at=utcnow()
    )
    row = db.session.execute(stmt.returning(table.c.id)).first()
    if row is None:
        return False
    record("optout.add", "optout", row.id, details={"phone": phone, "sender": sender, "source": source}, label=by)
    return True


def lift_opt_out(phone: str, sender: str, *, by: str | None = None) -> bool:
    """Remove `phone`'s opt-out for `sender` (START / UNSTOP / YES); return True if one existed.

    Only the row for that sender goes: a START to one number does not undo an opt-out that an
    operator recorded for every sender. `by` is as for `record_opt_out`.
    """
    removed = db.session.execute(
        delete(OptOut)
        .where(OptOut.phone == phone, OptOut.sender == sender)
        .returning(OptOut.id, OptOut.source)
        .execution_options(synchronize_session=False)
    ).all()
    for row in removed:
        details = {"phone": phone, "sender": sender, "source": row.source}
        record("optout.remove", "optout", row.id, details=details, label=by)
    return bool(removed)
