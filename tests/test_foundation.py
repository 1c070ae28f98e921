"""The app factory, configuration, operator login, CSRF, the CLI and the embedded Redis."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from smsdash import create_app
from smsdash.config import ConfigError, database_url, load_config
from smsdash.extensions import db
from smsdash.models import User
from smsdash.twilio.public_url import webhook_base_urls
from tests.conftest import TEST_PASSWORD, csrf_token_from

# Every private route, with ids filled in. test_private_route_list_is_complete keeps this list
# in step with the app's url_map, so a new route cannot slip in without a login check.
PRIVATE_ROUTES = [
    ("GET", "/"),
    ("GET", "/messages"),
    ("GET", "/messages/poll"),
    ("GET", "/messages/new"),
    ("POST", "/messages/new"),
    ("GET", "/scheduled"),
    ("POST", "/scheduled/1/cancel"),
    ("POST", "/scheduled/1/edit"),
    ("GET", "/messages/new/pick"),
    ("POST", "/messages/new/segments"),
    ("POST", "/messages/new/summary"),
    ("GET", "/messages/new/spreadsheet"),
    ("POST", "/messages/new/spreadsheet"),
    ("GET", "/messages/1"),
    ("GET", "/messages/1/poll"),
    ("GET", "/messages/1/deliveries.csv"),
    ("GET", "/messages/1/deliveries/1/timeline"),
    ("POST", "/messages/1/deliveries/1/retry"),
    ("POST", "/messages/1/approve"),
    ("POST", "/messages/1/reject"),
    ("GET", "/contacts"),
    ("GET", "/contacts/new"),
    ("POST", "/contacts/new"),
    ("GET", "/contacts/1/edit"),
    ("POST", "/contacts/1/edit"),
    ("POST", "/contacts/1/delete"),
    ("GET", "/contacts/fields"),
    ("GET", "/contacts/import"),
    ("POST", "/contacts/import"),
    ("GET", "/groups"),
    ("POST", "/groups"),
    ("GET", "/groups/1"),
    ("POST", "/groups/1"),
    ("POST", "/groups/1/delete"),
    ("POST", "/groups/1/members/1/remove"),
    ("GET", "/templates"),
    ("GET", "/templates/new"),
    ("POST", "/templates/new"),
    ("GET", "/templates/1/edit"),
    ("POST", "/templates/1/edit"),
    ("POST", "/templates/preview"),
    ("POST", "/templates/1/duplicate"),
    ("POST", "/templates/1/archive"),
    ("GET", "/setup"),
    ("GET", "/setup/checks"),
    ("GET", "/inbox"),
    ("GET", "/inbox/poll"),
    ("GET", "/inbox/unread"),
    ("GET", "/inbox/<path:number>"),
    ("POST", "/inbox/<path:number>"),
    ("GET", "/inbox/poll/<path:number>"),
    ("GET", "/inbox/media/1/1"),
    ("GET", "/team"),
    ("POST", "/team"),
    ("POST", "/team/1/role"),
    ("POST", "/team/1/deactivate"),
    ("POST", "/team/1/reactivate"),
    ("POST", "/team/1/link"),
    ("GET", "/account/password"),
    ("POST", "/account/password"),
    ("POST", "/logout"),
    ("GET", "/audit"),
    ("GET", "/audit.csv"),
]
PUBLIC_RULES = {
    "/login",
    "/healthz",
    "/set-password/<token>",
    "/static/<path:filename>",
    "/webhooks/twilio/status",
    "/webhooks/twilio/inbound",
}


def test_factory_uses_test_config(app: Flask) -> None:
    assert app.testing
    assert app.config["BASE_HOST_URL"] == "https://smsdash.example.com"


def test_factory_reads_environment_at_call_time_not_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example.com:5432/prod")
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db.example.com:5432/prod"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        (None, "sqlite:////srv/instance/smsdash.db"),
    ],
)
def test_database_url_rewriting(raw: str | None, expected: str) -> None:
    assert database_url(raw, "/srv/instance") == expected


@pytest.mark.parametrize("key", [None, "", "dev", "changeme", "short"])
def test_production_refuses_missing_or_default_secret_key(key: str | None, tmp_path: Path) -> None:
    env = {"APP_ENV": "production"} | ({"SECRET_KEY": key} if key is not None else {})
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(str(tmp_path), env=env)


def test_production_start_up_stops_with_a_clear_message(tmp_path: Path) -> None:
    """The real start-up path (`flask --app wsgi ...`) fails loudly, not with a stack of noise."""
    env = {"APP_ENV": "production", "PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_dev_secret_key_is_random_and_shared_by_processes(tmp_path: Path) -> None:
    first = load_config(str(tmp_path), env={})["SECRET_KEY"]
    second = load_config(str(tmp_path), env={})["SECRET_KEY"]
    other = load_config(str(tmp_path / "other"), env={})["SECRET_KEY"]
    assert first == second and len(first) >= 32 and other != first
    assert (tmp_path / "dev-secret-key").stat().st_mode & 0o777 == 0o600


def test_bad_numeric_setting_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SEND_CONCURRENCY"):
        load_config(str(tmp_path), env={"SEND_CONCURRENCY": "lots"})


def test_webhook_hosts_are_a_comma_separated_list_and_x_forwarded_host_is_opt_in(tmp_path: Path) -> None:
    env = {"TWILIO_WEBHOOK_HOSTS": " smsdash.herokuapp.com, https://tunnel.example.org/smsdash/ ,"}
    config = load_config(str(tmp_path), env={**env, "BASE_HOST_URL": "smsdash.example.com"})
    assert config["TWILIO_WEBHOOK_HOSTS"] == ("smsdash.herokuapp.com", "https://tunnel.example.org/smsdash/")
    assert webhook_base_urls(config) == [
        "https://smsdash.example.com",
        "https://smsdash.herokuapp.com",
        "https://tunnel.example.org/smsdash",
    ]
    assert webhook_base_urls(load_config(str(tmp_path), env={})) == []
    production = load_config(str(tmp_path), env={"APP_ENV": "production", "SECRET_KEY": "x" * 32})
    assert (production["PROXY_FIX_HOPS"], production["PROXY_FIX_X_HOST"]) == (1, 0)


def test_healthz_is_public_and_checks_the_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_login_page_has_labelled_fields(client: FlaskClient) -> None:
    html = client.get("/login").get_data(as_text=True)
    assert '<label for="email">Email</label>' in html
    assert '<label for="password">Password</label>' in html
    assert ">Log in</button>" in html


def test_private_route_list_is_complete(app: Flask) -> None:
    import re as _re

    listed = {(method, _re.sub(r"/1(?=/|$)", "/<id>", path)) for method, path in PRIVATE_ROUTES}
    in_app = {
        (method, _re.sub(r"<int:\w+>", "<id>", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule not in PUBLIC_RULES
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert in_app == listed


@pytest.mark.parametrize("method, path", PRIVATE_ROUTES)
def test_every_dashboard_route_requires_login(client: FlaskClient, method: str, path: str) -> None:
    """Without a session, every private route sends the browser to the login page, even with a
    valid CSRF token (so the refusal is the login gate's, not CSRF's)."""
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.open(path, method=method, data={"csrf_token": token} if method == "POST" else None)
    assert response.status_code == 302, (method, path, response.status_code)
    assert response.headers["Location"].startswith("/login?next="), (method, path)


def test_htmx_request_without_session_gets_hx_redirect(client: FlaskClient) -> None:
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_login_and_logout(client: FlaskClient, operator: User) -> None:
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=/", data={"email": "OP@example.com ", "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    page_token = csrf_token_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": page_token}).status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client: FlaskClient, operator: User) -> None:
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": operator.email, "password": "nope", "csrf_token": token})
    assert response.status_code == 401
    assert "Email or password is not right." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_ignores_an_offsite_next(client: FlaskClient, operator: User) -> None:
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=//evil.example.com/x",
        data={"email": operator.email, "password": TEST_PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_form_post_without_csrf_token_is_refused(client: FlaskClient, operator: User) -> None:
    response = client.post("/login", data={"email": operator.email, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_htmx_post_carries_csrf_in_header(logged_in: FlaskClient) -> None:
    html = logged_in.get("/").get_data(as_text=True)
    token = csrf_token_from(html)
    assert f'hx-headers=\'{{"X-CSRFToken": "{token}"}}\'' in html
    assert logged_in.post("/logout", headers={"HX-Request": "true"}).status_code == 400
    assert logged_in.post("/logout", headers={"HX-Request": "true", "X-CSRFToken": token}).status_code == 302


def test_users_create_command(app: Flask, runner) -> None:
    result = runner.invoke(args=["users", "create", "New@Example.com", "--password", "s3cret-pass"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.query(User).filter_by(email="new@example.com").one()
        assert user.check_password("s3cret-pass") and user.password_hash != "s3cret-pass"
        assert user.role == "admin"  # the first operator
    again = runner.invoke(args=["users", "create", "new@example.com", "--role", "admin", "--password", "s3cret-pass"])
    assert again.exit_code != 0 and "already exists" in again.output


def test_users_create_prompts_for_password(app: Flask, runner) -> None:
    result = runner.invoke(args=["users", "create", "p@example.com"], input="longenough\nlongenough\n")
    assert result.exit_code == 0, result.output
    assert "Password" in result.output


def test_users_create_rejects_short_password(runner) -> None:
    result = runner.invoke(args=["users", "create", "p@example.com", "--password", "short"])
    assert result.exit_code != 0 and "at least 8" in result.output


def test_embedded_redis_is_shared_by_two_processes(tmp_path: Path) -> None:
    """Two separate processes opening instance/redis.db talk to one embedded server."""
    script = textwrap.dedent(f"""
        import sys
        from smsdash.redis_conn import connect
        r = connect(None, {str(tmp_path / "redis.db")!r})
        if sys.argv[1] == "write":
            r.set("shared-key", "from-writer")
            sys.stdout.write(r.connection_pool.connection_kwargs["path"] + "\\n"); sys.stdout.flush()
            sys.stdin.readline()
        else:
            print(r.get("shared-key").decode())
    """)
    root = Path(__file__).parent.parent
    writer = subprocess.Popen(
        [sys.executable, "-c", script, "write"], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        socket_path = writer.stdout.readline().strip()
        reader = subprocess.run(
            [sys.executable, "-c", script, "read"], cwd=root, capture_output=True, text=True, timeout=30
        )
        assert reader.returncode == 0, reader.stderr
        assert reader.stdout.strip() == "from-writer"
    finally:
        assert writer.stdin is not None
        writer.stdin.write("\n")
        writer.stdin.flush()
        writer.wait(timeout=30)
    # The last process out stopped the embedded server: nothing is left running.
    with pytest.raises(redis.ConnectionError):
        redis.Redis(unix_socket_path=socket_path, retry=Retry(NoBackoff(), 0)).ping()


def test_migrations_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    """The Alembic chain goes up, all the way down, and up again on a fresh SQLite file."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect

    app = create_app(
        {"SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/m.db"}
    )
    with app.app_context():
        upgrade()
        assert {"comms_deliveries", "comms_events", "comms_messages"} <= set(inspect(db.engine).get_table_names())
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert "comms_deliveries" in inspect(db.engine).get_table_names()


def test_log_level_is_checked(tmp_path: Path) -> None:
    assert load_config(str(tmp_path), {})["LOG_LEVEL"] == "info"
    assert load_config(str(tmp_path), {"LOG_LEVEL": "DEBUG"})["LOG_LEVEL"] == "debug"
    with pytest.raises(ConfigError, match="LOG_LEVEL must be one of debug, info, warning, error"):
        load_config(str(tmp_path), {"LOG_LEVEL": "loud"})
