"""The dashboard's search boxes: one meaning of "matches" for contacts and a message's recipients.

A name matches when it contains the query in any case; a number matches when it contains the
query's digits, so "(415) 555" finds +14155550101 as typed by an operator.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select

from smsdash.models import Contact


def name_or_number(name: Any, number: Any, q: str) -> ColumnElement[bool] | None:
    """A WHERE clause for `q` over the `name` and `number` columns; None when `q` is blank."""
    q = q.strip()
    if not q:
        return None
    terms = [func.lower(name).contains(q.lower(), autoescape=True)]
    digits = "".join(ch for ch in q if ch.isdigit())
    if digits:
        terms.append(number.contains(digits, autoescape=True))
    return or_(*terms)


def search_contacts(q: str) -> Select[Contact]:
    """Contacts whose name or phone contains `q` (digits in `q` also match the phone's digits)."""
    stmt = select(Contact).order_by(func.lower(Contact.name), Contact.id)
    matches = name_or_number(Contact.name, Contact.phone, q)
    return stmt if matches is None else stmt.where(matches)
