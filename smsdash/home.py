"""The landing page after login is the messages list: what an operator checks first."""
from __future__ import annotations

from flask import Blueprint, redirect, url_for
from werkzeug.wrappers import Response

bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> Response:
    return redirect(url_for("messages.index"))  # type: ignore[return-value]
