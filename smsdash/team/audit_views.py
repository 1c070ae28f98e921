"""The audit log page and its CSV: who did what, to what, from where, for admins only.

The page and the export read the same filters (audit/query.py), so an admin who narrows the
table to one operator's week downloads exactly that week. A filter that cannot be read (a date
typed wrong) is shown as an error above the table and left out, never a server error.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Blueprint, Response, render_template, request, stream_with_context
from sqlalchemy import select

from smsdash.audit.actions import ACTIONS
from smsdash.audit.query import COMMAND_LINE, NO_OPERATOR, entries, read_filter
from smsdash.auth.permissions import requires
from smsdash.extensions import db
from smsdash.models import AuditEntry, User
from smsdash.web.csv_cells import as_text_cell
from smsdash.web.pagination import paginate

bp = Blueprint("audit_log", __name__)

PER_PAGE = 50

EXPORT_COLUMNS = (
    "id",
    "occurred_at",
    "actor",
    "action",
    "action_words",
    "target_type",
    "target_id",
    "address",
    "details",
)


def details_text(details: Mapping[str, Any]) -> str:
    """An entry's details on one line, `key: value` in the order they were recorded."""
    return ", ".join(f"{key}: {_value(value)}" for key, value in details.items())


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value) or "none"
    return "" if value is None else str(value)


@bp.get("/audit")
@requires("admin")
def index() -> tuple[str, int]:
    wanted = read_filter(request.args)
    page = paginate(entries(wanted), PER_PAGE)
    operators = db.session.scalars(select(User).order_by(User.email)).all()
    html = render_template(
        "team/audit.html",
        page=page,
        wanted=wanted,
        operators=operators,
        actions=ACTIONS,
        command_line=COMMAND_LINE,
        no_operator=NO_OPERATOR,
        details_text=details_text,
    )
    return html, 422 if wanted.problems else 200


@bp.get("/audit.csv")
@requires("admin")
def export() -> Response:
    """The filtered entries as CSV, newest first, streamed in chunks however long the log is."""
    stmt = entries(read_filter(request.args)).execution_options(yield_per=1000)

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        entry: AuditEntry
        for entry in db.session.scalars(stmt):
            writer.writerow(
                [
                    entry.id,
                    entry.occurred_at.isoformat(),
                    as_text_cell(entry.actor_label),
                    entry.action,
                    ACTIONS.get(entry.action, ""),
                    entry.target_type or "",
                    entry.target_id if entry.target_id is not None else "",
                    as_text_cell(entry.address or ""),
                    as_text_cell(details_text(entry.details or {})),
                ]
            )
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    return response
