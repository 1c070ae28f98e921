"""Twilio's Messages API, as the app uses it: one `send_sms` call per delivery.

Kept apart from the send job so the contract test (against Twilio's own OpenAPI spec) and the
job exercise exactly the same request: From or MessagingServiceSid, To, Body, StatusCallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app
from twilio.rest.api.v2010.account.message import MessageInstance

from smsdash.twilio.client import get_client


def sender_identity(config: Mapping[str, Any] | None = None) -> str:
    """The sender a message goes out from: the Messaging Service SID when set, else the From number.

    Opt-outs are recorded per sender, so the job and compose ask this one question."""
    config = config if config is not None else current_app.config
    return config.get("TWILIO_MESSAGING_SERVICE_SID") or config.get("TWILIO_FROM_NUMBER") or ""


def send_sms(to: str, body: str, status_callback: str | None) -> MessageInstance:
    """Create one outbound message at Twilio and return Twilio's answer.

    A Messaging Service, when configured, picks the sender itself (and holds the account's
    opt-out handling), so it wins over TWILIO_FROM_NUMBER. Raises the SDK's exceptions unchanged
    (TwilioRestException, TwilioServiceException, requests' timeouts): classifying them is the
    send job's business.
    """
    config = current_app.config
    service_sid = config.get("TWILIO_MESSAGING_SERVICE_SID") or ""
    sender: dict[str, str] = (
        {"messaging_service_sid": service_sid} if service_sid else {"from_": config.get("TWILIO_FROM_NUMBER") or ""}
    )
    # Messages take no StatusCallbackMethod (neither the API spec nor the SDK has one):
    # Twilio always POSTs message status callbacks, which is what the webhook expects.
    extra = {"status_callback": status_callback} if status_callback else {}
    return get_client().messages.create(to=to, body=body, **sender, **extra)
