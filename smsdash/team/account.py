"""An operator's own password: setting it from an admin's one-time link (public: whoever holds
the link is not logged in yet) and changing it when logged in.

After a link sets the password the operator is sent to the log-in page to use it, rather than
logged in here: logging in is where the throttle, the audit entry and `last_login_at` live, and
typing the new password once more proves it was saved as they meant it.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user

from smsdash.auth.operators import MIN_PASSWORD_LENGTH, OperatorError
from smsdash.auth.permissions import requires
from smsdash.models import User
from smsdash.team.forms import ChangePasswordForm, SetPasswordForm
from smsdash.team.links import LinkRefused, set_password_with_link, usable_link
from smsdash.team.passwords import change_password
from smsdash.web.form_errors import add_error

bp = Blueprint("account", __name__)

NO_STORE = {"Cache-Control": "no-store"}


def _refused(refusal: LinkRefused) -> ResponseReturnValue:
    status = 404 if refusal.reason == "unknown" else 410
    return render_template("team/link_refused.html", reason=refusal.reason), status, NO_STORE


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str) -> ResponseReturnValue:
    """Public (auth/permissions.py PUBLIC_ENDPOINTS): the token is the credential."""
    try:
        link = usable_link(token)
    except LinkRefused as refusal:
        return _refused(refusal)
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            set_password_with_link(token, form.password.data or "")
        except LinkRefused as refusal:
            return _refused(refusal)
        except OperatorError as exc:
            add_error(form.password, str(exc))
        else:
            flash("Your password is set. Log in with it.", "info")
            return redirect(url_for("auth.login"))
    page = render_template("team/set_password.html", form=form, email=link.user.email, min_length=MIN_PASSWORD_LENGTH)
    return page, 422 if form.errors else 200, NO_STORE


@bp.route("/account/password", methods=["GET", "POST"])
@requires("view")
def password() -> ResponseReturnValue:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        me: User = current_user._get_current_object()
        try:
            change_password(me, form.current.data or "", form.password.data or "")
        except OperatorError as exc:
            add_error(form.current if exc.field == "current" else form.password, str(exc))
        else:
            login_user(me)  # after the commit: this session gets the new version, every other one is over
            flash("Your password is changed. Every other session of yours has ended.", "info")
            return redirect("/")
    return render_template("team/password.html", form=form, min_length=MIN_PASSWORD_LENGTH), 422 if form.errors else 200
