"""Is this request from Twilio? `X-Twilio-Signature` checked against the URL Twilio signed.

The signature is an HMAC of the public URL Twilio called plus the form params, keyed by the
auth token. Behind Heroku's router or ngrok the app sees plain http and an internal host, so the
URL is rebuilt, path and query as received, on the configured public base (BASE_HOST_URL,
MAIL_APP_HOST or SERVER_NAME) and on each host of TWILIO_WEBHOOK_HOSTS.

The URL as the request names it is used only when none of those is configured. Its host is
whatever the caller put in Host (or X-Forwarded-Host), and every deployment on one Twilio
account shares the auth token: staging, or a tunnel whose traffic someone can read, could
replay its own signed callbacks here under its own host and move our deliveries. Local
development with no public base has no better answer; /setup and `twilio check` say so.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from functools import lru_cache

from flask import current_app, request
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from smsdash.twilio.public_url import webhook_base_urls


def _candidate_urls() -> Iterator[str]:
    """The URLs Twilio may have signed: this path and query on each configured base, the public
    base first (what `status_callback_url` gives Twilio); with none configured, the URL as seen."""
    bases = webhook_base_urls(current_app.config)
    if not bases:
        yield request.url
        return
    query = request.query_string.decode("latin-1")
    rest = request.path + (f"?{query}" if query else "")
    for base in bases:
        yield base + rest


@lru_cache(maxsize=4)
def _validator(token: str) -> RequestValidator:
    """One validator per auth token (it only holds the token), not one per request."""
    return RequestValidator(token)


def signature_rejection() -> str | None:
    """Why this request is not provably from Twilio, or None when its signature is valid."""
    token = current_app.config.get("TWILIO_AUTH_TOKEN") or ""
    if not token:
        return "TWILIO_AUTH_TOKEN is not set, so no signature can be checked"
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return "no X-Twilio-Signature header"
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    if algorithm.upper() not in (HMAC_SHA1, HMAC_SHA256):
        return f"unsupported signature algorithm {algorithm!r}"
    validator = _validator(token)
    # The exact URL first (one HMAC each); the validator's with/without-port variants only if
    # that fails, since Twilio is inconsistent about default ports.
    # Compared as bytes: anyone can post here, and compare_digest refuses non-ASCII str.
    expected = signature.encode()
    for url in _candidate_urls():
        if hmac.compare_digest(validator.compute_signature(url, request.form, algorithm).encode(), expected):
            return None
    urls = list(_candidate_urls())
    if any(validator.validate(url, request.form, signature, algorithm) for url in urls):
        return None
    return f"signature matches none of {', '.join(urls)}"
