"""The app's public base URL: where Twilio can reach us, and whether it plausibly can.

Order, as in the original system: BASE_HOST_URL, else MAIL_APP_HOST, else SERVER_NAME with
PREFERRED_URL_SCHEME. Status callbacks and signature checks both build on this one answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"


def _as_base(raw: str) -> str:
    """A configured host or URL as a base URL: https unless it names a scheme, no trailing slash."""
    raw = raw.strip()
    return ("" if "://" in raw else "https://") + raw.rstrip("/")


def public_base_url(config: Mapping[str, Any]) -> str | None:
    """The configured public base URL without a trailing slash, or None when none is set."""
    for key in ("BASE_HOST_URL", "MAIL_APP_HOST"):
        raw = (config.get(key) or "").strip()
        if raw:
            return _as_base(raw)
    server = (config.get("SERVER_NAME") or "").strip()
    if server:
        return f"{config.get('PREFERRED_URL_SCHEME') or 'http'}://{server}".rstrip("/")
    return None


def webhook_base_urls(config: Mapping[str, Any]) -> list[str]:
    """Every base Twilio may have signed a webhook for: the public base, then each host of
    TWILIO_WEBHOOK_HOSTS. Empty when nothing is configured (local development)."""
    bases = [public_base_url(config) or ""] + [_as_base(host) for host in config.get("TWILIO_WEBHOOK_HOSTS") or ()]
    return list(dict.fromkeys(base for base in bases if base))


def status_callback_url(config: Mapping[str, Any], delivery_id: int) -> str | None:
    """`<public base>/webhooks/twilio/status?d=<delivery id>`: the id rides in the signed URL."""
    base = public_base_url(config)
    if base is None:
        return None
    return f"{base}{STATUS_CALLBACK_PATH}?{urlencode({'d': delivery_id})}"


def unreachable_reason(base: str | None) -> str | None:
    """Why Twilio could not call `base` back, or None when it looks like public HTTPS."""
    if not base:
        return "no public base URL is set (BASE_HOST_URL)"
    parts = urlsplit(base)
    host = parts.hostname or ""
    if parts.scheme != "https":
        return f"{base} is not HTTPS; Twilio only calls public HTTPS URLs"
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return f"{host} is a local name that Twilio cannot reach"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None if "." in host else f"{host} is not a public host name"
    if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
        return f"{host} is a private address that Twilio cannot reach"
    return None
