"""Operator accounts: looking one up by email and creating one (the `users` commands use these)."""

from __future__ import annotations

from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import User

MIN_PASSWORD_LENGTH = 8


class OperatorError(ValueError):
    """Why an operator cannot be created; `field` names the input at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class OperatorExists(OperatorError):
    """The email already belongs to an operator."""


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def create_operator(email: str, password: str) -> User:
    """Create and commit an operator; raises OperatorError for a bad email, a short password
    or an email already taken."""
    email = email.strip().lower()
    if "@" not in email:
        raise OperatorError(f"{email!r} is not an email address", "email")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OperatorError(f"use at least {MIN_PASSWORD_LENGTH} characters", "password")
    if find_user(email) is not None:
        raise OperatorExists(f"an operator with email {email} already exists", "email")
    user = User(email=email)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user
