"""Configuration read from the environment, once, inside the app factory.

Nothing here runs at import time: `load_config()` is called by `create_app()` so tests can
set the environment (or pass a test config) before anything is read.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Keys that are known placeholders: production must never run with one of these.
DEFAULT_SECRET_KEYS = frozenset({"", "dev", "change-me", "changeme", "secret", "development"})


class ConfigError(RuntimeError):
    """Raised when the environment cannot produce a safe, working configuration."""


def database_url(raw: str | None, instance_path: str) -> str:
    """Return an SQLAlchemy URL for DATABASE_URL, defaulting to SQLite under instance/.

    Heroku hands out `postgres://` URLs, which SQLAlchemy no longer accepts; both that and
    `postgresql://` are pointed at the psycopg 3 driver.
    """
    if not raw:
        return "sqlite:///" + str(Path(instance_path) / "smsdash.db")
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def _dev_secret_key(instance_path: str) -> str:
    """A random key kept in instance/ so every dev process (web, worker) shares one session key."""
    path = Path(instance_path) / "dev-secret-key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def secret_key(env: Mapping[str, str], production: bool, instance_path: str) -> str:
    """The session key: required in production, random (and persisted) for a dev run."""
    key = env.get("SECRET_KEY", "")
    if production:
        if key.strip().lower() in DEFAULT_SECRET_KEYS or len(key) < 16:
            raise ConfigError(
                "APP_ENV=production needs SECRET_KEY set to a long random value "
                "(for example: python -c 'import secrets; print(secrets.token_hex(32))'). "
                "Refusing to start with a missing or default key."
            )
        return key
    return key or _dev_secret_key(instance_path)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def approval_threshold(env: Mapping[str, str]) -> int | None:
    """APPROVAL_THRESHOLD: a send to this many recipients or more waits for a second operator's
    approval. Unset, empty or 0 turns approval off (None); anything but a whole number >= 0 stops
    the app at start, so a typo never silently turns the safeguard off."""
    threshold = _int(env, "APPROVAL_THRESHOLD", 0)
    if threshold < 0:
        raise ConfigError(
            f"APPROVAL_THRESHOLD must be a whole number of recipients (1 or more, 0 for off), got {threshold}"
        )
    return threshold or None


LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level(env: Mapping[str, str]) -> str:
    """LOG_LEVEL, one of LOG_LEVELS (default info: what happened, without the worker's routine)."""
    raw = (env.get("LOG_LEVEL") or "info").strip().lower()
    if raw not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw


def _float(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty items."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def load_config(instance_path: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping from environment variables (see DESIGN.md's contracts)."""
    env = os.environ if env is None else env
    production = env.get("APP_ENV", "development") == "production"
    config: dict[str, Any] = {
        "APP_ENV": "production" if production else env.get("APP_ENV", "development"),
        "SECRET_KEY": secret_key(env, production, instance_path),
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL"), instance_path),
        # No pool_pre_ping: it costs a round trip per request. A connection found dead (database
        # restart) invalidates the pool; recycling bounds a connection's age below server or
        # proxy idle timeouts.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800},
        "LOG_LEVEL": log_level(env),
        "REDIS_URL": env.get("REDIS_URL") or None,
        "EMBEDDED_REDIS_PATH": str(Path(instance_path) / "redis.db"),
        "TWILIO_ACCOUNT_SID": env.get("TWILIO_ACCOUNT_SID", ""),
        "TWILIO_AUTH_TOKEN": env.get("TWILIO_AUTH_TOKEN", ""),
        "TWILIO_FROM_NUMBER": env.get("TWILIO_FROM_NUMBER", ""),
        "TWILIO_MESSAGING_SERVICE_SID": env.get("TWILIO_MESSAGING_SERVICE_SID", ""),
        "TWILIO_API_BASE_URL": env.get("TWILIO_API_BASE_URL", ""),
        "TWILIO_CONNECT_TIMEOUT": _float(env, "TWILIO_CONNECT_TIMEOUT", 5.0),
        "TWILIO_READ_TIMEOUT": _float(env, "TWILIO_READ_TIMEOUT", 15.0),
        "BASE_HOST_URL": env.get("BASE_HOST_URL", ""),
        "MAIL_APP_HOST": env.get("MAIL_APP_HOST", ""),
        "PROXY_FIX_HOPS": _int(env, "PROXY_FIX_HOPS", 1 if production else 0),
        # X-Forwarded-Host is believed only on request: Heroku's router passes a client's through.
        "PROXY_FIX_X_HOST": _int(env, "PROXY_FIX_X_HOST", 0),
        # Hosts besides the public base that Twilio may sign webhooks for (webhooks/signature.py).
        "TWILIO_WEBHOOK_HOSTS": _list(env, "TWILIO_WEBHOOK_HOSTS"),
        "DEFAULT_PHONE_REGION": env.get("DEFAULT_PHONE_REGION", "US"),
        "SEND_CONCURRENCY": _int(env, "SEND_CONCURRENCY", 32),
        # 8 waves of the default pool: per-job overhead (claim, the last wave's tail) amortised.
        "SEND_BATCH_SIZE": _int(env, "SEND_BATCH_SIZE", 256),
        "SEND_RATE_PER_SECOND": _float(env, "SEND_RATE_PER_SECOND", None),
        "SEND_MAX_ATTEMPTS": _int(env, "SEND_MAX_ATTEMPTS", 5),
        "SEND_RETRY_BASE_SECONDS": _float(env, "SEND_RETRY_BASE_SECONDS", 2.0),
        "SEND_RETRY_MAX_SECONDS": _float(env, "SEND_RETRY_MAX_SECONDS", 300.0),
        # A delivery Twilio keeps answering 429 waits this long (Twilio's own 10-hour queue) before it fails.
        "SEND_RATE_LIMIT_GIVE_UP_SECONDS": _float(env, "SEND_RATE_LIMIT_GIVE_UP_SECONDS", 36000.0),
        # The sweeper leaves deliveries younger than this alone: compose may be enqueueing them.
        "SEND_SWEEP_GRACE_SECONDS": _float(env, "SEND_SWEEP_GRACE_SECONDS", 10.0),
        "LARGE_SEND_CONFIRM_THRESHOLD": _int(env, "LARGE_SEND_CONFIRM_THRESHOLD", 100),
        # A send to this many recipients or more waits until another operator approves it (None: off).
        "APPROVAL_THRESHOLD": approval_threshold(env),
        # "Send later": the zone a time is read in when none is given (the page defaults to the
        # browser's), and how far ahead a send may be set (35 days: Twilio's own SendAt limit).
        "DEFAULT_TIMEZONE": env.get("DEFAULT_TIMEZONE") or "UTC",
        "SCHEDULE_MAX_DAYS": _int(env, "SCHEDULE_MAX_DAYS", 35),
        # "21:00-08:00": nobody is texted inside it in their own local time; unset, quiet hours are off.
        "QUIET_HOURS": env.get("QUIET_HOURS") or None,
        # Spreadsheet sends: the largest upload accepted (50,000 rows of a few columns is ~5 MB).
        "SPREADSHEET_MAX_BYTES": _int(env, "SPREADSHEET_MAX_BYTES", 20 * 1024 * 1024),
        # An upload never confirmed (the operator walked away) is deleted once this old.
        "SPREADSHEET_KEEP_HOURS": _float(env, "SPREADSHEET_KEEP_HOURS", 24.0),
        # The reconciler (reconciler.py): ages past which a non-final delivery is fetched from Twilio.
        "RECONCILE_SENT_AFTER_SECONDS": _float(env, "RECONCILE_SENT_AFTER_SECONDS", 600.0),
        "RECONCILE_PENDING_AFTER_SECONDS": _float(env, "RECONCILE_PENDING_AFTER_SECONDS", 120.0),
        # `sending` without a SID this long means its worker died. Keep it above
        # SEND_RETRY_MAX_SECONDS + TWILIO_READ_TIMEOUT: a retry waiting out its backoff looks the same.
        "RECONCILE_STUCK_SENDING_SECONDS": _float(env, "RECONCILE_STUCK_SENDING_SECONDS", 600.0),
        "RECONCILE_GIVE_UP_SECONDS": _float(env, "RECONCILE_GIVE_UP_SECONDS", 172800.0),
        "RECONCILE_INTERVAL_SECONDS": _int(env, "RECONCILE_INTERVAL_SECONDS", 60),
        "RECONCILE_LOCAL_INTERVAL_SECONDS": _int(env, "RECONCILE_LOCAL_INTERVAL_SECONDS", 5),
        "RECONCILE_BATCH_SIZE": _int(env, "RECONCILE_BATCH_SIZE", 50),
        "RECONCILE_MAX_PER_RUN": _int(env, "RECONCILE_MAX_PER_RUN", 500),
        "RECONCILE_RATE_PER_SECOND": _float(env, "RECONCILE_RATE_PER_SECOND", 10.0),
        # Log-in throttling (login_throttle.py): failed attempts allowed per window, per email typed
        # and per client address; past either, log-in is refused until the window ends.
        "LOGIN_MAX_FAILURES_PER_ACCOUNT": _int(env, "LOGIN_MAX_FAILURES_PER_ACCOUNT", 5),
        "LOGIN_MAX_FAILURES_PER_IP": _int(env, "LOGIN_MAX_FAILURES_PER_IP", 20),
        "LOGIN_FAILURE_WINDOW_SECONDS": _int(env, "LOGIN_FAILURE_WINDOW_SECONDS", 900),
        # How long a set-password link an admin hands out stays usable (team/links.py).
        "PASSWORD_LINK_HOURS": _float(env, "PASSWORD_LINK_HOURS", 48.0),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_SECURE": production,
        "WTF_CSRF_TIME_LIMIT": None,
    }
    if production:  # Twilio only calls https, and links built outside a request must not say http
        config["PREFERRED_URL_SCHEME"] = "https"
    for name in ("SERVER_NAME", "PREFERRED_URL_SCHEME"):
        if env.get(name):
            config[name] = env[name]
    return config
