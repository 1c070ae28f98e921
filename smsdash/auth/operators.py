"""Operator accounts as the log-in knows them: finding one by email, and the rules an account's
email and password must meet (the team package adds, changes and deactivates operators)."""

from __future__ import annotations

import re

from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import User

MIN_PASSWORD_LENGTH = 8
# The log-in form's own test of an address: something, an @, something, no spaces.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")
EMAIL_MAX_LENGTH = 254  # users.email's length


class OperatorError(ValueError):
    """Why an operator cannot be created or changed; `field` names the input at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class OperatorExists(OperatorError):
    """The email already belongs to an operator."""


def normalise_email(email: str) -> str:
    """`email` as stored (trimmed, lower case); raises OperatorError when it is not an address."""
    email = (email or "").strip().lower()
    if not EMAIL_PATTERN.match(email) or len(email) > EMAIL_MAX_LENGTH:
        raise OperatorError(f"{email!r} is not an email address", "email")
    return email


def check_new_password(password: str) -> None:
    """Refuse a password too short to keep anyone out (OperatorError on `password`)."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise OperatorError(f"use at least {MIN_PASSWORD_LENGTH} characters", "password")


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))
