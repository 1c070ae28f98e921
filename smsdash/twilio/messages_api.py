"""Twilio's Messages API, as the app uses it: one `send_sms` call per delivery.

Kept apart from the send job so the contract test (against Twilio's own OpenAPI spec) and the
job exercise exactly the same request: From or MessagingServiceSid, To, Body, StatusCallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.rest.api.v2010.account.message import MessageInstance

from smsdash.twilio.client import RedirectingHttpClient, get_client
from smsdash.twilio.too_many_requests import TooManyRequests, parse_retry_after


def sender_identity(config: Mapping[str, Any] | None = None) -> str:
    """The sender a message goes out from: the Messaging Service SID when set, else the From number.

    Opt-outs are recorded per sender, so the job and compose ask this one question."""
    config = config if config is not None else current_app.config
    return config.get("TWILIO_MESSAGING_SERVICE_SID") or config.get("TWILIO_FROM_NUMBER") or ""


# Twilio's bounds for ValidityPeriod, in seconds (its queue keeps a message at most 10 hours).
VALIDITY_MIN_SECONDS, VALIDITY_MAX_SECONDS = 1, 36_000


def send_sms(to: str, body: str, status_callback: str | None, validity_period: int | None = None) -> MessageInstance:
    """Create one outbound message at Twilio and return Twilio's answer.

    A Messaging Service, when configured, picks the sender itself (and holds the account's
    opt-out handling), so it wins over TWILIO_FROM_NUMBER. Raises the SDK's exceptions
    (TwilioRestException, TwilioServiceException, requests' timeouts) unchanged but for a 429,
    raised as TooManyRequests with the Retry-After the SDK drops: classifying them is the send
    job's business. `validity_period` (seconds) makes Twilio drop the message, failed with
    30036, if it is still in Twilio's queue by then.
    """
    config = current_app.config
    service_sid = config.get("TWILIO_MESSAGING_SERVICE_SID") or ""
    sender: dict[str, str] = (
        {"messaging_service_sid": service_sid} if service_sid else {"from_": config.get("TWILIO_FROM_NUMBER") or ""}
    )
    # Messages take no StatusCallbackMethod (neither the API spec nor the SDK has one):
    # Twilio always POSTs message status callbacks, which is what the webhook expects.
    extra: dict[str, Any] = {"status_callback": status_callback} if status_callback else {}
    if validity_period is not None:
        extra["validity_period"] = validity_period
    client = get_client()
    try:
        return client.messages.create(to=to, body=body, **sender, **extra)
    except (TwilioRestException, TwilioServiceException) as exc:
        if exc.status != 429:
            raise
        http = client.http_client
        response = http.last_response() if isinstance(http, RedirectingHttpClient) else None
        raise TooManyRequests(exc, parse_retry_after(response.headers if response else None)) from exc
