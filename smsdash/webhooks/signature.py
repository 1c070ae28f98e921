"""Is this request from Twilio? `X-Twilio-Signature` checked against the URL Twilio signed.

The signature is an HMAC of the public URL Twilio called plus the form params, keyed by the
auth token. Behind Heroku's router or ngrok the app sees plain http and an internal host, so the
URL is rebuilt on the configured public base (BASE_HOST_URL), and the URL as seen (after
ProxyFix, configured by PROXY_FIX_HOPS) is the fallback.
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

from smsdash.twilio.public_url import public_base_url


def _candidate_urls() -> Iterator[str]:
    """The URLs Twilio may have signed: this path and query on the configured public base (what
    `status_callback_url` gives Twilio, so first), then the URL as this app sees it (built only
    when needed: werkzeug's `request.url` is not free)."""
    base = public_base_url(current_app.config)
    rebuilt = None
    if base:
        query = request.query_string.decode("latin-1")
        rebuilt = f"{base}{request.path}" + (f"?{query}" if query else "")
        yield rebuilt
    if request.url != rebuilt:
        yield request.url


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
