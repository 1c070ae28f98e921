"""smsdash: a Flask dashboard for sending SMS through Twilio and tracking each delivery live."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config from the environment (or `test_config`), extensions, blueprints.

    The features are imported here, not at the top, so `import smsdash.<package>` (the
    simulator, a script using `smsdash.sms`) loads that package alone, not Flask and the app."""
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from smsdash import cli, redis_conn, schedule
    from smsdash.auth import views as auth
    from smsdash.auth.permissions import check_every_route_has_a_rule
    from smsdash.compose import views as compose
    from smsdash.config import load_config
    from smsdash.contacts import views as contacts
    from smsdash.dialects import tune_sqlite
    from smsdash.extensions import csrf, db, htmx, login_manager, migrate
    from smsdash.health import views as health
    from smsdash.inbox import views as inbox
    from smsdash.message_templates import views as message_templates
    from smsdash.messages import views as messages
    from smsdash.setup import views as setup
    from smsdash.team import account, audit_views
    from smsdash.team import views as team
    from smsdash.web import security_headers
    from smsdash.web.sessions import CookieSessionInterface
    from smsdash.webhooks import views as webhooks

    test_config = dict(test_config or {})
    app = Flask(
        __name__,
        instance_path=test_config.pop("INSTANCE_PATH", None)
        or os.environ.get("INSTANCE_PATH")
        or os.path.join(PROJECT_ROOT, "instance"),
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(load_config(app.instance_path))
    app.config.from_mapping(test_config)
    app.session_interface = CookieSessionInterface()  # skips the signer for cookie-less requests
    hops, host_hops = app.config["PROXY_FIX_HOPS"], app.config["PROXY_FIX_X_HOST"]
    if hops or host_hops:  # trust X-Forwarded-* from this many proxies; X-Forwarded-Host only if asked
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # Flask's documented way to wrap it
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=host_hops, x_port=hops, x_prefix=hops
        )

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    redis_conn.init_app(app)
    with app.app_context():
        tune_sqlite(db.engine)

    auth.init_app(app)
    security_headers.init_app(app)
    for blueprint in (
        health.bp,
        webhooks.bp,
        contacts.bp,
        messages.bp,
        compose.bp,
        message_templates.bp,
        setup.bp,
        inbox.bp,
        team.bp,
        account.bp,
        audit_views.bp,
    ):
        app.register_blueprint(blueprint)
    schedule.init_app(app)
    cli.init_app(app)
    check_every_route_has_a_rule(app)
    return app
