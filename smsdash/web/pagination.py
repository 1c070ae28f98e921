"""Offset pagination for dashboard tables: one COUNT and one LIMIT/OFFSET query per page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask import request
from sqlalchemy import Select, func, select

from smsdash.extensions import db

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and what the pager needs to link to its neighbours."""

    items: Sequence[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.page * self.per_page)


def page_number() -> int:
    """The `page` query argument, clamped to 1 when missing or not a positive number."""
    return max(1, request.args.get("page", 1, type=int) or 1)


def paginate(
    stmt: Select[*tuple[Any, ...]], page: int, per_page: int, *, scalars: bool = True, total: int | None = None
) -> Page[Any]:
    """Run `stmt` for one page; a page past the end shows the last page instead of nothing.

    A caller that already knows how many rows `stmt` yields passes `total` and saves the COUNT."""
    if total is None:
        total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    page = min(page, Page([], page, per_page, total).pages)
    query = stmt.limit(per_page).offset((page - 1) * per_page)
    result = db.session.execute(query)
    items = list(result.scalars() if scalars else result.all())
    return Page(items=items, page=page, per_page=per_page, total=total)
