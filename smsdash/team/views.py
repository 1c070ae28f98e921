"""The team page (admins only): every operator with their role, last log-in and status, a form
to add one, and per operator a role change, deactivate or reactivate, and a new set-password link.

A refusal (the last admin, an unknown role, a taken email) is shown on the page with 422 and
nothing changes. A new link is shown on the answer to the POST that made it, never stored
anywhere the admin could see it again: the page asks the browser not to keep it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from smsdash.auth.operators import OperatorError
from smsdash.auth.permissions import requires
from smsdash.auth.roles import ROLES
from smsdash.extensions import db
from smsdash.models import User
from smsdash.team.forms import AddOperatorForm
from smsdash.team.links import make_link
from smsdash.team.operators import add_operator, change_role, deactivate, operators, reactivate
from smsdash.web.form_errors import add_error

bp = Blueprint("team", __name__)


def _operator_or_404(user_id: int) -> User:
    return db.session.get(User, user_id) or abort(404)


def _me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]  # a LocalProxy


def _page(form: AddOperatorForm | None = None, status: int = 200, **context: Any) -> ResponseReturnValue:
    html = render_template(
        "team/index.html", operators=operators(), form=form or AddOperatorForm(), roles=ROLES, **context
    )
    return html, status, {"Cache-Control": "no-store"}


def _with_link(user: User, token: str) -> ResponseReturnValue:
    url = url_for("account.set_password", token=token, _external=True)
    return _page(link={"email": user.email, "url": url})


@bp.route("/team", methods=["GET", "POST"])
@requires("admin")
def index() -> ResponseReturnValue:
    form = AddOperatorForm()
    if not form.validate_on_submit():
        return _page(form, 422 if form.errors else 200)
    try:
        user = add_operator(form.email.data or "", form.role.data or "")
    except OperatorError as exc:
        add_error(form.role if exc.field == "role" else form.email, str(exc))
        return _page(form, 422)
    flash(f"Added {user.email} as {user.role}. Give them the link below to set their password.", "info")
    return _with_link(user, make_link(user, by=_me()))


@bp.post("/team/<int:user_id>/role")
@requires("admin")
def role(user_id: int) -> ResponseReturnValue:
    user = _operator_or_404(user_id)
    try:
        changed = change_role(user, request.form.get("role", ""))
    except OperatorError as exc:
        return _page(error=str(exc), status=422)
    if changed:
        flash(f"{user.email} is now {user.role}.", "info")
    if user.id == _me().id and user.role != "admin":
        return redirect("/")  # they demoted themselves: the team page is no longer theirs
    return redirect(url_for("team.index"))


@bp.post("/team/<int:user_id>/deactivate")
@requires("admin")
def deactivate_operator(user_id: int) -> ResponseReturnValue:
    user = _operator_or_404(user_id)
    try:
        if deactivate(user):
            flash(f"Deactivated {user.email}: every session of theirs has ended.", "info")
    except OperatorError as exc:
        return _page(error=str(exc), status=422)
    return redirect(url_for("team.index"))


@bp.post("/team/<int:user_id>/reactivate")
@requires("admin")
def reactivate_operator(user_id: int) -> ResponseReturnValue:
    user = _operator_or_404(user_id)
    if reactivate(user):
        flash(f"Reactivated {user.email}: they can log in with their old password, or make them a new link.", "info")
    return redirect(url_for("team.index"))


@bp.post("/team/<int:user_id>/link")
@requires("admin")
def new_link(user_id: int) -> ResponseReturnValue:
    user = _operator_or_404(user_id)
    try:
        token = make_link(user, by=_me())
    except OperatorError as exc:
        return _page(error=str(exc), status=422)
    flash(f"Made a new set-password link for {user.email}; any older one no longer works.", "info")
    return _with_link(user, token)
