"""Who may use which route: every view names the permission it needs, and one gate enforces it.

`@requires("send")` marks a view; `enforce` runs before every request (after the log-in gate)
and refuses with 403 and a plain sentence when the operator's role lacks that permission. A
refused state-changing request (anything but GET/HEAD/OPTIONS) is audited: that is a forged or
stale form, worth knowing about. The check reads the role from the database on every request
(the user loader loads the operator anyway), so a role change applies at the operator's next
click, on every web process.

A route with no rule fails closed: `check_every_route_has_a_rule` refuses to start the app, and
the gate would refuse the request, so a new page is never open to everyone by accident.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from smsdash.audit.record import record
from smsdash.auth.roles import REFUSALS, Permission, role_can
from smsdash.extensions import db

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Endpoints reachable without logging in. Everything else requires an operator session and a
# permission rule, so a new page is private unless someone decides otherwise here (or marks its
# blueprint public). The webhooks check Twilio's signature instead; a set-password link's token is its own credential.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "health.healthz", "static", "account.set_password"})
PUBLIC_BLUEPRINTS = frozenset({"webhooks"})

RULE_ATTRIBUTE = "required_permission"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def requires(permission: Permission, *, read: Permission | None = None) -> Callable[[F], F]:
    """Mark a view as needing `permission` (see auth/roles.py for which roles hold it).

    `read` is a weaker permission for GET and HEAD, for a page that lists things and takes a
    form to add one (a viewer sees the groups, a sender adds one)."""

    def mark(view: F) -> F:
        setattr(view, RULE_ATTRIBUTE, {"write": permission, "read": read or permission})
        return view

    return mark


def rule_of(app: Flask, endpoint: str, method: str = "POST") -> Permission | None:
    """The permission `method` on `endpoint` needs; None when its view names none."""
    rule: dict[str, Permission] | None = getattr(app.view_functions.get(endpoint), RULE_ATTRIBUTE, None)
    if rule is None:
        return None
    return rule["read" if method in SAFE_METHODS else "write"]


def can(permission: Permission) -> bool:
    """True when the logged-in operator holds `permission`: what templates ask to hide controls."""
    return bool(current_user.is_authenticated and role_can(current_user.role, permission))


def is_public(endpoint: str | None, blueprint: str | None) -> bool:
    return endpoint is None or endpoint in PUBLIC_ENDPOINTS or blueprint in PUBLIC_BLUEPRINTS


def enforce() -> ResponseReturnValue | None:
    """`before_request` gate: refuse what the operator's role does not allow (403, plain words)."""
    endpoint = request.endpoint
    if is_public(endpoint, request.blueprint) or not current_user.is_authenticated:
        return None  # the log-in gate has already sent anonymous visitors to /login
    assert endpoint is not None
    needed = rule_of(current_app._get_current_object(), endpoint, request.method)  # type: ignore[attr-defined]
    if needed is not None and role_can(current_user.role, needed):
        return None
    if needed is None:
        log.error("route %s has no permission rule; refused", endpoint)
    return refuse(REFUSALS.get(needed or "admin", REFUSALS["admin"]), needed=needed)


def refuse(message: str, *, needed: str | None) -> ResponseReturnValue:
    """Refuse the logged-in operator's request: 403 with `message` (plain text for htmx), and,
    for a state-changing request, an audit entry naming what was `needed`. The gate above and a
    view's own rule (an author approving their own send) refuse alike."""
    if request.method not in SAFE_METHODS:
        record(
            "permission.denied",
            details={"method": request.method, "path": request.path, "role": current_user.role, "needed": needed},
        )
        db.session.commit()
    if request.headers.get("HX-Request"):
        return message, 403, {"Content-Type": "text/plain; charset=utf-8"}
    return render_template("auth/forbidden.html", message=message), 403


def check_every_route_has_a_rule(app: Flask) -> None:
    """Refuse to start when a non-public route names no permission (fail closed, at boot)."""
    missing = sorted(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if not is_public(rule.endpoint, rule.endpoint.rpartition(".")[0] or None)
        and rule_of(app, rule.endpoint) is None
    )
    if missing:
        raise RuntimeError(
            "routes without a permission rule (add @requires(...) from smsdash.auth.permissions): " + ", ".join(missing)
        )


def init_app(app: Flask) -> None:
    app.before_request(enforce)
    app.jinja_env.globals["can"] = can
