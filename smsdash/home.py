"""The landing page after login is the messages list: what an operator checks first."""
from __future__ import annotations

from flask import Blueprint
from werkzeug.wrappers import Response

from . import messages

bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> Response:
    return messages.index()
