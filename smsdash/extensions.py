"""Flask extensions, created once here and bound to the app in `create_app()`."""

from __future__ import annotations

from typing import Any, cast

from flask_htmx import HTMX
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import CursorResult, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.dml import UpdateBase


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so Alembic can name and drop constraints."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()


def rows_changed(statement: UpdateBase) -> int:
    """Run an UPDATE or DELETE in the session; return how many rows it matched.

    Conditional UPDATEs ("only if still in this state") learn here whether they won. The
    session's `execute` is typed as returning a plain Result, but a DML statement always gives
    a CursorResult, which carries the rowcount: the cast says so once, not at every caller.
    (Not for INSERT: through the ORM its rowcount is -1 on PostgreSQL; use RETURNING.)"""
    return cast(CursorResult[Any], db.session.execute(statement)).rowcount
