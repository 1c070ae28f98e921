"""The inbox: one row per number that texted us, newest first, and the version its pollers compare.

A conversation is every reply from one number (`from_number`). One GROUP BY over the
(from_number, id) index gives each one's newest reply and unread count; the newest reply's row
and the contact's name are joined to that, so a page is one statement however many texts a
conversation holds.

Read state is shared by the team, not kept per operator: the inbox is a queue of people waiting
for an answer, and once any operator has opened a thread, it has been seen and is answered (or
not) by that operator. Per-operator state would leave every reply "unread" for everyone else
forever, and the badge would stop meaning "someone is waiting".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, case, func, or_, select

from smsdash.contacts.search import name_or_number
from smsdash.extensions import db
from smsdash.models import Contact, InboundMessage

REPLIES = InboundMessage.__table__


@dataclass(frozen=True)
class InboxState:
    """What every inbox poller compares: the newest reply and how many are unread. A new reply
    raises `newest`; opening a thread lowers `unread`; nothing else changes the inbox."""

    newest: int
    unread: int

    @property
    def version(self) -> str:
        return hashlib.blake2s(f"{self.newest}:{self.unread}".encode(), digest_size=8).hexdigest()


def inbox_state() -> InboxState:
    """One statement: max(id) from the primary key, the unread count from the partial index."""
    unread = select(func.count()).select_from(REPLIES).where(REPLIES.c.read_at.is_(None)).scalar_subquery()
    newest, count = db.session.execute(select(func.max(REPLIES.c.id), unread)).one()
    return InboxState(newest or 0, count or 0)


def conversations(q: str = "", unread_only: bool = False) -> Select[Any]:
    """Rows (number, contact name, last reply, unread count), newest conversation first.

    `q` matches the number (its digits), the contact's name, or the text of any reply."""
    per_number = (
        select(
            InboundMessage.from_number.label("number"),
            func.max(InboundMessage.id).label("last_id"),
            func.sum(case((InboundMessage.read_at.is_(None), 1), else_=0)).label("unread"),
        )
        .group_by(InboundMessage.from_number)
        .subquery()
    )
    if unread_only:
        per_number = select(per_number).where(per_number.c.unread > 0).subquery()
    stmt = (
        select(per_number.c.number, Contact.name, InboundMessage, per_number.c.unread)
        .join(InboundMessage, InboundMessage.id == per_number.c.last_id)
        .outerjoin(Contact, Contact.phone == per_number.c.number)
        .order_by(per_number.c.last_id.desc())
    )
    matches = name_or_number(Contact.name, per_number.c.number, q)
    if matches is None:
        return stmt
    said = select(InboundMessage.from_number).where(
        func.lower(InboundMessage.body).contains(q.strip().lower(), autoescape=True)
    )
    return stmt.where(or_(matches, per_number.c.number.in_(said)))
