"""The /setup page: the original system's Twilio checklist, each item checked live.

The checks themselves live in `setup_checks.py` (shared with `flask twilio check`); this page
only renders them. They call Twilio and the app's own webhook, so the page shell renders at once
and the checklist arrives as an htmx fragment, and again on "Check again".
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from smsdash.auth.permissions import requires
from smsdash.extensions import db
from smsdash.setup.checks import run_checks

bp = Blueprint("setup", __name__)


@bp.get("/setup")
@requires("view")
def index() -> str:
    return render_template("setup/index.html")


@bp.get("/setup/checks")
@requires("view")
def checks() -> str:
    # End the read the log-in check began: the checks call Twilio (and this app's own webhook),
    # and no transaction may stay open across that.
    db.session.commit()
    results = run_checks(current_app._get_current_object())  # type: ignore[attr-defined]  # a LocalProxy, typed as Flask
    return render_template("setup/_checks.html", results=results)
