"""Pointing Twilio at this app: the Messaging Service's callbacks, or the From number's inbound URL.

The original system's `rails twilio:configure_webhooks[BASE_URL]`. Twilio keeps an SMS status
callback per message (we set one on every send) or per Messaging Service; a phone number's own
`status_callback` is for voice calls. So with a Messaging Service both URLs are set on the
service, and with a bare From number only the inbound SMS URL can be set on the number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask

from smsdash.twilio.client import get_client
from smsdash.twilio.public_url import INBOUND_PATH, STATUS_CALLBACK_PATH, unreachable_reason

NUMBER_NOTE = (
    "Twilio keeps message status callbacks per message or per Messaging Service, not per phone "
    "number (a number's own status callback is for voice calls). This app already asks for a status "
    "callback on every message it sends, at BASE_HOST_URL; set TWILIO_MESSAGING_SERVICE_SID to also "
    "have a service-level status callback."
)


class BadBaseURL(ValueError):
    """The BASE_URL given to configure-webhooks cannot be used by Twilio."""


@dataclass(frozen=True)
class Change:
    """One setting at Twilio: where it lives, its value now, and the value we want."""

    target: str
    field: str
    before: str | None
    after: str

    @property
    def needed(self) -> bool:
        return self.before != self.after


@dataclass
class Plan:
    """What configure-webhooks will do: the changes, how to apply them, and notes for the operator."""

    changes: list[Change]
    apply: Callable[[], None]
    notes: list[str]


def normalize_base_url(raw: str) -> str:
    """`https://host[/prefix]` without a trailing slash; the webhook paths are appended to it.

    A path is kept (an app mounted under /smsdash), a query or fragment is refused, and so is a
    URL Twilio could not reach (plain http, localhost, a private address)."""
    raw = raw.strip()
    if "://" not in raw:
        raise BadBaseURL(f"{raw!r} has no scheme; use https://{raw.lstrip('/')}")
    parts = urlsplit(raw)
    if parts.query or parts.fragment:
        raise BadBaseURL(f"{raw} has a query or fragment; give only the scheme, host and (optional) path")
    if not parts.hostname:
        raise BadBaseURL(f"{raw} has no host name")
    path = parts.path.rstrip("/")
    for suffix in (STATUS_CALLBACK_PATH, INBOUND_PATH):
        if path.endswith(suffix):
            raise BadBaseURL(f"{raw} is a webhook URL; give the app's base URL (without {suffix})")
    base = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))
    reason = unreachable_reason(base)
    if reason:
        raise BadBaseURL(reason)
    return base


def plan(app: Flask, base_url: str) -> Plan:
    """Read the current settings at Twilio and work out the changes for `base_url` (normalized)."""
    config = app.config
    status_url, inbound_url = base_url + STATUS_CALLBACK_PATH, base_url + INBOUND_PATH
    client = get_client(app)
    notes: list[str] = []
    configured = (config.get("BASE_HOST_URL") or "").rstrip("/")
    if configured != base_url:
        notes.append(
            f"BASE_HOST_URL is {configured or 'not set'}: set it to {base_url} as well, since "
            "the webhook checks each signature against that URL and every send asks for "
            "callbacks there."
        )
    service_sid = config.get("TWILIO_MESSAGING_SERVICE_SID") or ""
    if service_sid:
        service = client.messaging.v1.services(service_sid).fetch()
        target = f"Messaging Service {service_sid} ({service.friendly_name})"
        changes = [
            Change(target, "status_callback", service.status_callback, status_url),
            Change(target, "inbound_request_url", service.inbound_request_url, inbound_url),
            Change(target, "inbound_method", service.inbound_method, "POST"),
        ]
        if service.use_inbound_webhook_on_number:
            notes.append(
                "This service has use_inbound_webhook_on_number on: each number's own SMS URL "
                "wins over the service's inbound URL."
            )

        def apply_service() -> None:
            client.messaging.v1.services(service_sid).update(**{c.field: c.after for c in changes if c.needed})

        return Plan(changes, apply_service, notes)
    from_number = config.get("TWILIO_FROM_NUMBER") or ""
    if not from_number:
        raise LookupError("Set TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER first.")
    number = _find_number(client, from_number)
    target = f"Phone number {from_number} ({number.sid})"
    changes = [
        Change(target, "sms_url", number.sms_url, inbound_url),
        Change(target, "sms_method", number.sms_method, "POST"),
    ]
    notes.append(NUMBER_NOTE)

    def apply_number() -> None:
        client.incoming_phone_numbers(number.sid).update(**{c.field: c.after for c in changes if c.needed})

    return Plan(changes, apply_number, notes)


def _find_number(client: Any, phone_number: str) -> Any:
    found = [
        n
        for n in client.incoming_phone_numbers.list(phone_number=phone_number, limit=20)
        if n.phone_number == phone_number
    ]
    if not found:
        raise LookupError(f"TWILIO_FROM_NUMBER={phone_number} is not a phone number of this Twilio account.")
    return found[0]
