"""Writing the audit log: who did what, to what, from where, with the details that matter.

`record` adds the entry to the caller's transaction and does not commit: the entry is written
exactly when the change it describes is, and a change that rolls back leaves no entry claiming
it happened. The actor is whoever the request is logged in as, or, outside a request (a `flask`
command), `cli:<OS user>`; a change no operator made (a recipient's STOP, Twilio's 21610) names
its source in `label` instead.

Entries are never changed: the mapper refuses an UPDATE or DELETE of one here, and triggers in
the database (migration 0007) refuse it from any other client too.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from typing import Any

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import event

from smsdash.audit.actions import ACTIONS
from smsdash.extensions import db
from smsdash.models import AuditEntry, User

# How a command-line actor's label starts; the audit page's "command line" filter looks for it.
CLI_PREFIX = "cli:"


class AuditLogIsAppendOnly(RuntimeError):
    """Something tried to change or delete an audit entry."""


def cli_actor() -> str:
    """The label of a command-line actor: there is no operator, only the OS account that ran it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        name = "unknown"
    return f"{CLI_PREFIX}{name}"


def record(
    action: str,
    target_type: str | None = None,
    target_id: int | None = None,
    *,
    details: Mapping[str, Any] | None = None,
    actor: User | None = None,
    label: str | None = None,
) -> AuditEntry:
    """Append one entry to the current transaction (the caller commits it with its change).

    `actor` overrides the logged-in operator, for the moments when the session does not say
    who it is yet (a log-in) or any more (a log-out). `label` names an actor that is not an
    operator ("recipient +15551234567", "twilio"): without it such an entry would read
    "anonymous" in a webhook, or name the worker's OS account. With a label the logged-in
    operator is not taken as the actor (only an explicit `actor` is): a recipient's STOP is not
    the doing of whoever's click happened to apply it."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to smsdash/audit/actions.py")
    address: str | None = None
    if actor is None and label is None and has_request_context() and current_user.is_authenticated:
        actor = current_user._get_current_object()
    if has_request_context():
        address = request.remote_addr
    if label is None:
        label = _label(actor, in_request=has_request_context())
    entry = AuditEntry(
        actor_id=actor.id if actor is not None else None,
        actor_label=label,
        action=action,
        target_type=target_type,
        target_id=target_id,
        address=address,
        details=dict(details or {}),
    )
    db.session.add(entry)
    return entry


def _label(actor: User | None, *, in_request: bool) -> str:
    if in_request:
        return actor.email if actor is not None else "anonymous"
    return f"{actor.email} ({cli_actor()})" if actor is not None else cli_actor()


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _refuse_change(mapper: Any, connection: Any, target: AuditEntry) -> None:
    raise AuditLogIsAppendOnly("audit entries are never changed or deleted")
