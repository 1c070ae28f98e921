"""Operator login: the login page, logout, and the login-required gate."""

from __future__ import annotations

from functools import cache
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

from smsdash.audit.record import record
from smsdash.auth import permissions
from smsdash.auth import throttle as login_throttle
from smsdash.auth.operators import find_user
from smsdash.auth.permissions import is_public, requires
from smsdash.extensions import db, login_manager
from smsdash.models import User, utcnow

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[lambda v: v.strip().lower() if v else v],
        validators=[DataRequired(), Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter an email address.")],
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The operator a session cookie names, only while it is still theirs.

    The id is `<user id>.<session version>` (User.get_id): a cookie from before a password
    change or a deactivation carries an old version, or names an inactive operator, and is
    refused, so those end every session at once on every web process. A cookie from before
    versions existed (a bare id) is refused too: its operator logs in again."""
    user_id, _, version = session_id.partition(".")
    if not (user_id.isdigit() and version.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.is_active or user.session_version != int(version):
        return None
    return user


def _safe_next(target: str | None) -> str:
    """Only follow a `next` that stays on this site, so the login page is no open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return "/"


@cache
def _decoy_hash() -> str:
    """A hash to check unknown emails against, so they take as long as a wrong password and the
    answer's timing does not tell which emails are operators."""
    return generate_password_hash("not anyone's password")


def _password_ok(user: User | None, password: str) -> bool:
    if user is None:
        check_password_hash(_decoy_hash(), password)
        return False
    return user.check_password(password)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    status, headers = (200 if request.method == "GET" else 401), {}
    if form.validate_on_submit():
        email = form.email.data or ""
        attempt = login_throttle.take_attempt(email, request.remote_addr)
        user = None
        if not attempt.allowed:
            # The same words whether the email is an operator's or not, and no password check.
            minutes = attempt.retry_after_minutes
            flash(f"Too many failed log-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.", "error")
            status, headers = 429, {"Retry-After": str(attempt.retry_after)}
            reason = "throttled"
        elif not _password_ok(user := find_user(email), form.password.data or "") or user is None:
            reason = "unknown email" if user is None else "wrong password"
        elif not user.is_active:
            reason = "deactivated"  # the right password, and the same words as a wrong one
        else:
            login_throttle.succeeded(attempt)
            user.last_login_at = utcnow()
            record("login.success", "operator", user.id, actor=user)
            db.session.commit()
            # After the commit, so the operator Flask-Login keeps for this request is loaded, not expired.
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        # An attempt the throttle refused is not recorded: those are unbounded (a flood would fill
        # the log), and the failures that tripped the throttle are on it already.
        if reason != "throttled":
            flash("Email or password is not right.", "error")
            record("login.failure", "operator", user.id if user else None, details={"email": email, "reason": reason})
            db.session.commit()
    return render_template("auth/login.html", form=form), status, headers


@bp.route("/logout", methods=["POST"])
@login_required
@requires("view")
def logout() -> ResponseReturnValue:
    record("logout", "operator", current_user.id)
    db.session.commit()
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


def require_login() -> ResponseReturnValue | None:
    """`before_request` gate: every route but the public ones needs an operator session.

    Public routes are let through before `current_user` is touched: loading the session and the
    user would be wasted work on every Twilio callback."""
    if is_public(request.endpoint, request.blueprint):
        return None
    if current_user.is_authenticated:
        return None
    login_url = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request"):
        response = Response(status=401)
        response.headers["HX-Redirect"] = login_url
        return response
    return redirect(login_url)


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    app.register_blueprint(bp)
    app.before_request(require_login)
    permissions.init_app(app)  # after the log-in gate: roles are checked for logged-in operators only
