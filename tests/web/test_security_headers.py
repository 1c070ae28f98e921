"""Browser-facing hardening: anti-framing, nosniff, referrer and base/form policies on every
answer, HSTS in production over HTTPS, and production's cookie flags and URL scheme."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smsdash import create_app
from smsdash.config import load_config
from smsdash.models import User
from smsdash.twilio.public_url import public_base_url
from tests.conftest import TEST_PASSWORD, csrf_token_from

PRODUCTION_ENV = {"APP_ENV": "production", "SECRET_KEY": "a-long-random-production-key-0123456789"}


@pytest.mark.parametrize("path", ["/login", "/", "/messages", "/healthz", "/static/css/app.css"])
def test_pages_cannot_be_framed_or_sniffed(logged_in: FlaskClient, path: str) -> None:
    response = logged_in.get(path)
    assert response.status_code == 200
    policy = {
        d.strip().split(" ", 1)[0]: d.strip().split(" ", 1)[1]
        for d in response.headers["Content-Security-Policy"].split(";")
    }
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'" and policy["base-uri"] == "'self'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_only_the_sites_own_script_files_run(client: FlaskClient) -> None:
    policy = client.get("/login").headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy


def test_no_template_has_an_inline_script_or_event_handler() -> None:
    """What `script-src 'self'` would silently block: a confirmation prompt would be skipped."""
    templates = Path(__file__).resolve().parents[2] / "templates"
    found = [
        f"{path.relative_to(templates)}: {match.group(0)}"
        for path in sorted(templates.rglob("*.html"))
        for match in re.finditer(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:|hx-on", path.read_text())
    ]
    assert found == []


def test_hsts_only_in_production_over_https(client: FlaskClient, app: Flask) -> None:
    assert "Strict-Transport-Security" not in client.get("/login", base_url="https://localhost").headers
    app.config["APP_ENV"] = "production"
    assert "Strict-Transport-Security" not in client.get("/login").headers
    assert client.get("/login", base_url="https://localhost").headers["Strict-Transport-Security"] == "max-age=31536000"


def test_production_session_cookie_is_secure_httponly_samesite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_settings: dict
) -> None:
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path),
            **redis_settings,
            "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(tmp_path / "x.db"),
        }
    )
    cookie = app.test_client().get("/login", base_url="https://smsdash.example.com").headers["Set-Cookie"]
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert app.config["REMEMBER_COOKIE_SECURE"] is True


def test_production_builds_https_urls(tmp_path: Path) -> None:
    config = load_config(str(tmp_path), {**PRODUCTION_ENV, "SERVER_NAME": "smsdash.example.com"})
    assert config["PREFERRED_URL_SCHEME"] == "https"
    assert public_base_url(config) == "https://smsdash.example.com"
    assert load_config(str(tmp_path), {"SERVER_NAME": "localhost:5000"}).get("PREFERRED_URL_SCHEME") is None
    explicit = load_config(str(tmp_path), {**PRODUCTION_ENV, "PREFERRED_URL_SCHEME": "http"})
    assert explicit["PREFERRED_URL_SCHEME"] == "http"  # a deployer who sets it decides


def test_https_form_posts_keep_working_under_the_referrer_policy(client: FlaskClient, operator: User) -> None:
    """Over HTTPS Flask-WTF wants a same-origin Referer on every post; `same-origin` sends one."""
    base = "https://smsdash.example.com"
    page = client.get("/login", base_url=base)
    assert page.headers["Referrer-Policy"] in ("same-origin", "strict-origin", "strict-origin-when-cross-origin")
    response = client.post(
        "/login",
        base_url=base,
        headers={"Referer": f"{base}/login"},
        data={
            "email": operator.email,
            "password": TEST_PASSWORD,
            "csrf_token": csrf_token_from(page.get_data(as_text=True)),
        },
    )
    assert response.status_code == 302
