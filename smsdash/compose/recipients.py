"""Who a composed message goes to: typed numbers, chosen contacts and groups, as one clean list.

The operator sees the count that will really be sent: typed numbers normalised to E.164 (each bad
one named), everyone in the chosen groups, duplicates removed, and opted-out numbers left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from smsdash.delivery.optouts import opted_out_among
from smsdash.extensions import db
from smsdash.models import Contact, Group, group_members
from smsdash.sms.phones import InvalidNumber, normalize, split_numbers


@dataclass
class Resolution:
    """The recipients to send to (E.164, contact id or None) and what was left out, and why.

    Opted-out numbers are kept apart rather than dropped: compose records them as canceled
    deliveries, so the message page shows who was left out."""

    recipients: list[tuple[str, int | None]] = field(default_factory=list)
    invalid: list[InvalidNumber] = field(default_factory=list)
    duplicates: int = 0
    opted_out: list[tuple[str, int | None]] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)


def resolve(
    typed: str, contact_ids: Iterable[int], group_ids: Iterable[int], *, region: str, sender: str
) -> Resolution:
    """Resolve the compose form's three recipient sources into one deduplicated list."""
    result = Resolution()
    result.contacts = list(db.session.scalars(select(Contact).where(Contact.id.in_(set(contact_ids)))))
    result.groups = list(db.session.scalars(select(Group).where(Group.id.in_(set(group_ids)))))
    candidates: list[tuple[str, int | None]] = []
    for raw in split_numbers(typed):
        try:
            candidates.append((normalize(raw, region), None))
        except InvalidNumber as exc:
            result.invalid.append(exc)
    candidates += [(c.phone, c.id) for c in result.contacts]
    if result.groups:
        rows = db.session.execute(
            select(Contact.phone, Contact.id)
            .join(group_members, group_members.c.contact_id == Contact.id)
            .where(group_members.c.group_id.in_([g.id for g in result.groups]))
            .order_by(Contact.id)
        )
        candidates += [(phone, cid) for phone, cid in rows]
    known = _contact_ids_by_phone({p for p, cid in candidates if cid is None})
    unique: dict[str, int | None] = {}
    for phone, cid in candidates:
        if phone in unique:
            result.duplicates += 1
            continue
        unique[phone] = cid if cid is not None else known.get(phone)
    blocked = opted_out_among(unique, sender)
    result.opted_out = [(p, cid) for p, cid in unique.items() if p in blocked]
    result.recipients = [(p, cid) for p, cid in unique.items() if p not in blocked]
    return result


def _contact_ids_by_phone(phones: set[str]) -> dict[str, int]:
    """Typed numbers that belong to a contact are linked to it, so the message page shows names."""
    if not phones:
        return {}
    return dict(db.session.execute(select(Contact.phone, Contact.id).where(Contact.phone.in_(phones))).all())
