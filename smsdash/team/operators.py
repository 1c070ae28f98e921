"""The team: adding operators, changing their roles, deactivating and reactivating them.

Each function checks, changes, audits and commits in one transaction, so the audit entry is
written exactly when the change is. The page and the `users` commands both call these, so the
rules hold whichever way a change comes in; the one that matters most is that the dashboard
always keeps an active admin (see `_keep_an_admin`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from smsdash.audit.record import record
from smsdash.auth.operators import OperatorError, OperatorExists, check_new_password, find_user, normalise_email
from smsdash.auth.roles import UnknownRole, check_role
from smsdash.extensions import db
from smsdash.models import User, utcnow
from smsdash.team.links import void_links


class LastAdmin(OperatorError):
    """The change would leave the dashboard with no active admin, so nobody could run the team."""

    def __init__(self, user: User, doing: str) -> None:
        super().__init__(
            f"{user.email} is the last active admin: make another operator an admin before you {doing} them", "role"
        )


def operators() -> Sequence[User]:
    """Every operator, active ones first, then by email."""
    return db.session.scalars(select(User).order_by(User.deactivated_at.is_not(None), User.email)).all()


def has_operators() -> bool:
    return db.session.scalar(select(func.count()).select_from(User)) != 0


def add_operator(email: str, role: str, password: str | None = None) -> User:
    """Create an operator with `role`; without `password` they get an unusable random one until
    they use a set-password link. Raises OperatorError (OperatorExists for a taken email)."""
    email = normalise_email(email)
    role = _role(role)
    if password is not None:
        check_new_password(password)
    if find_user(email) is not None:
        raise OperatorExists(f"an operator with email {email} already exists", "email")
    user = User(email=email, role=role)
    # Nobody knows this one, so nobody can log in with it: the link sets the real password.
    user.set_password(password if password is not None else secrets.token_urlsafe(32))
    db.session.add(user)
    db.session.flush()
    record("operator.create", "operator", user.id, details={"email": email, "role": role})
    db.session.commit()
    return user


def change_role(user: User, role: str) -> bool:
    """Give `user` another role; False when it already was theirs (nothing recorded).
    Raises OperatorError for an unknown role, LastAdmin for demoting the last active admin."""
    role = _role(role)
    old_role = user.role
    if role == old_role:
        return False
    _lock_admins()
    user.role = role
    if old_role == "admin":
        _keep_an_admin(user, "demote")
    record("operator.role", "operator", user.id, details={"email": user.email, "old_role": old_role, "new_role": role})
    db.session.commit()
    return True


def deactivate(user: User) -> bool:
    """Stop `user` logging in and end every session they have, at once, on every web process
    (the user loader refuses an old session version). Their unused set-password links stop
    working too. False when they already were deactivated; LastAdmin for the last active admin."""
    if not user.is_active:
        return False
    _lock_admins()
    user.deactivated_at = utcnow()
    user.end_sessions()
    if user.role == "admin":
        _keep_an_admin(user, "deactivate")
    void_links(user)
    record("operator.deactivate", "operator", user.id, details={"email": user.email})
    db.session.commit()
    return True


def reactivate(user: User) -> bool:
    """Let `user` log in again, with their old password; False when they were active."""
    if user.is_active:
        return False
    user.deactivated_at = None
    record("operator.reactivate", "operator", user.id, details={"email": user.email})
    db.session.commit()
    return True


def _role(role: str) -> str:
    try:
        return check_role(role)
    except UnknownRole as exc:
        raise OperatorError(str(exc), "role") from exc


def _active_admin() -> ColumnElement[bool]:
    return (User.role == "admin") & User.deactivated_at.is_(None)


def _lock_admins() -> None:
    """Lock the active admins' rows (PostgreSQL) before a change that may remove one.

    Two admins demoting each other at once would each count the other and both succeed; with
    the rows locked the second waits, then counts again after the first commits. SQLite has one
    writer at a time, and `_keep_an_admin` counts after this transaction's write, so it needs no lock."""
    db.session.execute(select(User.id).where(_active_admin()).with_for_update())


def _keep_an_admin(user: User, doing: str) -> None:
    """Refuse (roll back, LastAdmin) when the change just made to `user` left no active admin."""
    db.session.flush()
    if not db.session.scalar(select(func.count()).select_from(User).where(_active_admin())):
        refusal = LastAdmin(user, doing)
        db.session.rollback()
        raise refusal
