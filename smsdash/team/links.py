"""One-time set-password links: how a new operator gets a password, or a forgetful one a new one.

The dashboard sends no mail, so an admin makes a link and hands it over. Only the token's
SHA-256 is stored, so the database alone opens nothing; the admin sees the token once, on the
page that made it. A link works once (a conditional UPDATE claims it, so two tabs racing cannot
both use it), until PASSWORD_LINK_HOURS have passed or a newer link for the same operator
replaces it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Literal

from flask import current_app
from sqlalchemy import select, update

from smsdash.audit.record import record
from smsdash.auth.operators import OperatorError, check_new_password
from smsdash.extensions import db, rows_changed
from smsdash.models import PasswordLink, User, utcnow

Refusal = Literal["unknown", "used", "expired"]


class LinkRefused(Exception):
    """The token opens nothing: no such link, used already, or expired (or replaced)."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason: Refusal = reason


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def make_link(user: User, *, by: User | None = None) -> str:
    """Store a new link for `user`, voiding their earlier unused ones, and return its token (the
    only time it exists outside the operator's hands). Raises OperatorError for a deactivated operator."""
    if not user.is_active:
        raise OperatorError(f"{user.email} is deactivated: reactivate them before making a link", "link")
    void_links(user)
    token = secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(hours=current_app.config["PASSWORD_LINK_HOURS"])
    db.session.add(
        PasswordLink(
            user_id=user.id, token_hash=token_hash(token), created_by_id=by.id if by else None, expires_at=expires_at
        )
    )
    record(
        "operator.password_link",
        "operator",
        user.id,
        details={"email": user.email, "expires_at": expires_at.isoformat()},
        actor=by,
    )
    db.session.commit()
    return token


def void_links(user: User) -> None:
    """End every unused link of `user` (in the caller's transaction): a newer link, or a
    deactivation, means the older ones must not open anything."""
    now = utcnow()
    db.session.execute(
        update(PasswordLink)
        .where(PasswordLink.user_id == user.id, PasswordLink.used_at.is_(None), PasswordLink.expires_at > now)
        .values(expires_at=now)
    )


def usable_link(token: str) -> PasswordLink:
    """The link `token` opens, or LinkRefused saying why it opens nothing."""
    link: PasswordLink | None = db.session.scalar(
        select(PasswordLink).where(PasswordLink.token_hash == token_hash(token))
    )
    if link is None:
        raise LinkRefused("unknown")
    if link.used_at is not None:
        raise LinkRefused("used")
    if link.expires_at <= utcnow():
        raise LinkRefused("expired")
    return link


def set_password_with_link(token: str, password: str) -> User:
    """Use the link once: set its operator's password and end every session they had (whoever
    held the old password is out). Raises LinkRefused, or OperatorError for a short password
    (the link stays unused, so they can try again)."""
    link = usable_link(token)
    check_new_password(password)
    now = utcnow()
    claimed = rows_changed(
        update(PasswordLink)
        .where(PasswordLink.id == link.id, PasswordLink.used_at.is_(None), PasswordLink.expires_at > now)
        .values(used_at=now)
    )
    if not claimed:  # another request used it (or a newer link voided it) since usable_link read it
        db.session.rollback()
        usable_link(token)
        raise LinkRefused("used")
    user = link.user
    user.set_password(password)
    user.end_sessions()
    record("password.set", "operator", user.id, details={"email": user.email}, actor=user)
    db.session.commit()
    return user
