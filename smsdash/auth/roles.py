"""Roles and what each may do: the one table every permission check reads.

Three roles, each a superset of the one before: a viewer reads every page, a sender also does
everything about messages, contacts and templates, an admin also runs the team (and whatever
settings the dashboard exposes). Views name the permission they need (auth/permissions.py), never
a role, so moving a right from one role to another is a change here only.
"""

from __future__ import annotations

from typing import Final, Literal

Permission = Literal["view", "send", "admin"]

ROLES: Final = ("admin", "sender", "viewer")

GRANTS: Final[dict[str, frozenset[Permission]]] = {
    "viewer": frozenset({"view"}),
    "sender": frozenset({"view", "send"}),
    "admin": frozenset({"view", "send", "admin"}),
}

# What a refusal says, per permission missing: plain words, no role jargon beyond the role's name.
REFUSALS: Final[dict[Permission, str]] = {
    "view": "You need to log in to see this page.",
    "send": "Your role lets you read this dashboard, not change it: ask an admin for the sender role.",
    "admin": "Only an admin can do this.",
}


class UnknownRole(ValueError):
    """A role name outside ROLES."""

    def __init__(self, role: str) -> None:
        super().__init__(f"{role!r} is not a role: choose admin, sender or viewer")


def check_role(role: str) -> str:
    """The role name, normalised; raises UnknownRole for anything outside the three."""
    name = (role or "").strip().lower()
    if name not in ROLES:
        raise UnknownRole(role)
    return name


def role_can(role: str | None, permission: Permission) -> bool:
    return permission in GRANTS.get(role or "", frozenset())
