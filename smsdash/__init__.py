"""smsdash: a Flask dashboard for sending SMS through Twilio and tracking each delivery live."""
from __future__ import annotations

import os
from typing import Any, Mapping

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from . import (auth, compose_page, contacts, health, home, messages, reconciler, redis_conn, security_headers,
               setup_page, sms_cli, twilio_commands, webhooks, worker)
from .config import load_config
from .extensions import csrf, db, htmx, login_manager, migrate
from .sessions import CookieSessionInterface

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config from the environment (or `test_config`), extensions, blueprints."""
    test_config = dict(test_config or {})
    app = Flask(
        __name__,
        instance_path=test_config.pop("INSTANCE_PATH", None) or os.environ.get("INSTANCE_PATH")
        or os.path.join(PROJECT_ROOT, "instance"),
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(load_config(app.instance_path))
    app.config.from_mapping(test_config)
    app.session_interface = CookieSessionInterface()  # skips the signer for cookie-less requests
    if hops := app.config["PROXY_FIX_HOPS"]:  # trust X-Forwarded-* from this many proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)  # type: ignore[method-assign]

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    redis_conn.init_app(app)
    with app.app_context():
        _tune_sqlite(db.engine)

    auth.init_app(app)
    security_headers.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(home.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(contacts.bp)
    app.register_blueprint(messages.bp)
    app.register_blueprint(compose_page.bp)
    app.register_blueprint(setup_page.bp)
    worker.init_app(app)
    sms_cli.init_app(app)
    twilio_commands.init_app(app)
    reconciler.init_app(app)
    return app


def _tune_sqlite(engine: Engine) -> None:
    """WAL and a busy timeout let the web and worker processes share one SQLite file."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
