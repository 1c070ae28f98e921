"""The Twilio REST client: credentials and timeouts from config, and an optional base-URL override.

Twilio's SDK has no base-URL option, so `TWILIO_API_BASE_URL` (the simulator, or a contract
mock) is honoured by an HTTP client whose `request()` swaps the scheme and host of every URL
the SDK builds. Everything else, the SDK's request building and error parsing included, runs
unchanged, which is what lets the tests exercise the real SDK.

Every request also checks the project's rule that no database transaction stays open across a
call to Twilio, and logs a warning (with the caller's stack) when one is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, current_app, has_app_context
from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from smsdash.extensions import db

log = logging.getLogger(__name__)
_EXTENSION_KEY = "smsdash_twilio_client"
_lock = threading.Lock()


class TwilioCredentialsMissing(RuntimeError):
    """Raised when a Twilio call is attempted without TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN."""


def _transaction_open() -> bool:
    """True when this thread's app context has a database transaction open.

    Twilio may take TWILIO_READ_TIMEOUT seconds to answer. A write transaction held meanwhile keeps
    SQLite's lock on the whole database, or PostgreSQL's on the rows it wrote, that long, and a
    status callback waiting for them outlasts Twilio's 15 s webhook timeout; even a read leaves
    PostgreSQL "idle in transaction", holding back vacuum and any migration's ALTER TABLE."""
    if not has_app_context() or "sqlalchemy" not in current_app.extensions:
        return False
    return bool(db.session.registry.has() and db.session().in_transaction())


class RedirectingHttpClient(TwilioHttpClient):
    """A TwilioHttpClient with (connect, read) timeouts, a pool sized for concurrent sends,
    and, when `base_url` is set, every request sent to that scheme and host instead."""

    def __init__(self, base_url: str | None, connect_timeout: float, read_timeout: float, pool_size: int) -> None:
        super().__init__(pool_connections=True, timeout=read_timeout)
        # requests takes a (connect, read) pair; the SDK's own check only accepts a number, so
        # the pair is set after its constructor and used as the default for every request.
        self.timeout = (connect_timeout, read_timeout)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4))
        assert self.session is not None
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.base = urlsplit(base_url) if base_url else None

    # TwilioHttpClient.request() stores each response in an instance attribute and returns that
    # attribute, so sending threads sharing one client could get each other's responses (and
    # SIDs). Keeping the SDK's two "last request/response" attributes per thread prevents it.
    def _thread_state(self) -> threading.local:
        state: threading.local = self.__dict__.setdefault("_per_thread", threading.local())
        return state

    @property
    def _test_only_last_response(self) -> Response | None:
        return getattr(self._thread_state(), "response", None)

    @_test_only_last_response.setter
    def _test_only_last_response(self, value: Response | None) -> None:
        self._thread_state().response = value

    @property
    def _test_only_last_request(self) -> Any:
        return getattr(self._thread_state(), "request", None)

    @_test_only_last_request.setter
    def _test_only_last_request(self, value: Any) -> None:
        self._thread_state().request = value

    def last_response(self) -> Response | None:
        """This thread's last response, headers included: the SDK's exceptions drop the headers
        (a 429's Retry-After), so `send_sms` reads them here."""
        return self._test_only_last_response

    def rewrite(self, url: str) -> str:
        """Point a Twilio API URL at the configured base, keeping its path and query."""
        if self.base is None:
            return url
        parts = urlsplit(url)
        prefix = self.base.path.rstrip("/")
        return urlunsplit((self.base.scheme, self.base.netloc, prefix + parts.path, parts.query, ""))

    def check_no_transaction(self, method: str, url: str) -> None:
        """Warn, with the caller's stack, when a request to Twilio is made inside a transaction."""
        if _transaction_open():
            log.warning(
                "Twilio request %s %s made with a database transaction open: its locks wait for Twilio's answer",
                method,
                urlsplit(url).path,
                stack_info=True,
                stacklevel=3,
            )

    def request(
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = False,
    ) -> Response:
        self.check_no_transaction(method, url)
        return super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def build_client(config: Mapping[str, Any]) -> Client:
    """A Twilio client from a config mapping (the app's, or a variant the setup checks try)."""
    sid, token = config.get("TWILIO_ACCOUNT_SID"), config.get("TWILIO_AUTH_TOKEN")
    if not sid or not token:
        raise TwilioCredentialsMissing("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must both be set")
    http = RedirectingHttpClient(
        config.get("TWILIO_API_BASE_URL") or None,
        float(config.get("TWILIO_CONNECT_TIMEOUT") or 5.0),
        float(config.get("TWILIO_READ_TIMEOUT") or 15.0),
        int(config.get("SEND_CONCURRENCY") or 10),
    )
    return Client(sid, token, http_client=http)


def get_client(app: Flask | None = None) -> Client:
    """The app's Twilio client, built once per process and shared by its sending threads."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy, typed as Flask
    client = app.extensions.get(_EXTENSION_KEY)
    if client is None:
        with _lock:
            client = app.extensions.get(_EXTENSION_KEY)
            if client is None:
                client = build_client(app.config)
                app.extensions[_EXTENSION_KEY] = client
    return client
