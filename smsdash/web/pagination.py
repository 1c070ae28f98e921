"""Offset pagination for dashboard tables: Flask-SQLAlchemy's `db.paginate`, plus the one thing
it does not do, showing the last page for a page past the end.

`db.paginate` reads `?page=` itself (missing, junk, zero or negative: page 1) and, with
`error_out=False`, answers a page past the end with no rows. Our tables clamp instead: a link
or a live table whose rows went away (a filter's rows leaving it, contacts deleted) lands on the
last page there is, not on an empty one. That costs a second items query, only on such a page.
"""

from __future__ import annotations

from typing import Any

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select

from smsdash.extensions import db


def paginate(stmt: Select[Any], per_page: int, *, total: int | None = None) -> Pagination:
    """One page of `stmt`'s entities, for the `page` query argument.

    A caller that already knows how many rows `stmt` yields passes `total` and saves the COUNT
    (`count=False`, then the total set by hand, as Flask-SQLAlchemy's docs allow)."""
    page = _page(stmt, None, per_page, total)
    if page.page > max(page.pages, 1):
        page = _page(stmt, page.pages, per_page, page.total)
    return page


def _page(stmt: Select[Any], number: int | None, per_page: int, total: int | None) -> Pagination:
    page = db.paginate(stmt, page=number, per_page=per_page, error_out=False, count=total is None)
    if total is not None:
        page.total = total
    return page
