"""An operator changing their own password: proven by the current one, and ending every other
session, so a password someone else learned stops working on every device at once."""

from __future__ import annotations

from smsdash.audit.record import record
from smsdash.auth.operators import OperatorError, check_new_password
from smsdash.extensions import db
from smsdash.models import User


def change_password(user: User, current: str, new: str) -> None:
    """Set `new` once `current` checks out, end all of `user`'s sessions and commit.

    The caller logs the operator's own session in again (its cookie carries the old session
    version too). Raises OperatorError on `current` or `password`."""
    if not user.check_password(current or ""):
        raise OperatorError("that is not your current password", "current")
    check_new_password(new)
    user.set_password(new)
    user.end_sessions()
    record("password.change", "operator", user.id, details={"email": user.email}, actor=user)
    db.session.commit()
