"""Finding audit entries: the audit page's and its CSV's filters, read once and applied once.

The page and the export take the same query arguments, so one `AuditFilter` is read from them
(`read_filter`, which says what is wrong with a bad date instead of guessing) and one statement
is built from it (`entries`): what the page shows is exactly what the CSV holds. Dates are UTC
days and both ends are inclusive, as an operator reading "from 1 March to 3 March" means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import Select, select

from smsdash.audit.actions import ACTIONS
from smsdash.audit.record import CLI_PREFIX
from smsdash.models import AuditEntry

# The operator filter's values beside an operator's id: entries made by a `flask` command, and
# entries with no operator at all (a recipient's STOP, Twilio, a failed log-in).
COMMAND_LINE: Final = "cli"
NO_OPERATOR: Final = "none"


@dataclass(frozen=True)
class AuditFilter:
    """What to show; an empty field filters nothing."""

    actor: str = ""
    action: str = ""
    since: date | None = None
    until: date | None = None
    target_type: str = ""
    target_id: int | None = None
    problems: list[str] = field(default_factory=list, compare=False)

    def query_args(self) -> dict[str, str]:
        """The filter as query arguments again: the CSV link and the pager keep it."""
        args = {
            "actor": self.actor,
            "action": self.action,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "target_type": self.target_type,
            "target_id": str(self.target_id) if self.target_id is not None else "",
        }
        return {k: v for k, v in args.items() if v}


def _day(raw: str, label: str, problems: list[str]) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems.append(f"The {label} date {raw!r} is not a date: use YYYY-MM-DD, for example 2026-03-01.")
        return None


def read_filter(args: Mapping[str, str]) -> AuditFilter:
    """The filter in `args` (a request's query arguments). A part that cannot be read is left
    out of the filter and explained in `problems`, so the page says so rather than failing."""
    problems: list[str] = []
    action = (args.get("action") or "").strip()
    if action and action not in ACTIONS:
        problems.append(f"{action!r} is not an action the audit log records.")
        action = ""
    since = _day(args.get("since") or "", "from", problems)
    until = _day(args.get("until") or "", "to", problems)
    if since and until and since > until:
        problems.append("The from date is after the to date: nothing can match.")
    raw_id = (args.get("target_id") or "").strip()
    target_id = int(raw_id) if raw_id.isascii() and raw_id.isdigit() else None
    if raw_id and target_id is None:
        problems.append(f"The target id {raw_id!r} is not a number.")
    return AuditFilter(
        actor=(args.get("actor") or "").strip(),
        action=action,
        since=since,
        until=until,
        target_type=(args.get("target_type") or "").strip(),
        target_id=target_id,
        problems=problems,
    )


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def entries(wanted: AuditFilter) -> Select[Any]:
    """The entries `wanted` asks for, newest first (id breaks ties within one timestamp)."""
    stmt = select(AuditEntry)
    by_cli = AuditEntry.actor_label.startswith(CLI_PREFIX) | AuditEntry.actor_label.contains(f"({CLI_PREFIX}")
    if wanted.actor == COMMAND_LINE:
        stmt = stmt.where(by_cli)
    elif wanted.actor == NO_OPERATOR:
        stmt = stmt.where(AuditEntry.actor_id.is_(None), ~by_cli)
    elif wanted.actor.isascii() and wanted.actor.isdigit():
        stmt = stmt.where(AuditEntry.actor_id == int(wanted.actor))
    if wanted.action:
        stmt = stmt.where(AuditEntry.action == wanted.action)
    if wanted.since:
        stmt = stmt.where(AuditEntry.occurred_at >= _start_of(wanted.since))
    if wanted.until:
        stmt = stmt.where(AuditEntry.occurred_at < _start_of(wanted.until + timedelta(days=1)))
    if wanted.target_type:
        stmt = stmt.where(AuditEntry.target_type == wanted.target_type)
    if wanted.target_id is not None:
        stmt = stmt.where(AuditEntry.target_id == wanted.target_id)
    return stmt.order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc())
