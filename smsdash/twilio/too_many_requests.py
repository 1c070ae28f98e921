"""Twilio's "too many requests" (HTTP 429), with the wait it asked for.

The SDK turns a 429 into a TwilioRestException (or, for RFC 9457 answers, a
TwilioServiceException) that keeps the status, code and message but drops the response's
headers, so a `Retry-After` Twilio sends would be lost. `send_sms` reads it from the HTTP
client's last response in the same thread and raises this subclass instead: everything that
handles a TwilioRestException still does, and the send job can honour the wait.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from twilio.base.exceptions import TwilioRestException, TwilioServiceException


class TooManyRequests(TwilioRestException):
    """A 429 from Twilio; `retry_after` is the seconds its Retry-After header asked for, or None."""

    def __init__(self, original: TwilioRestException | TwilioServiceException, retry_after: float | None) -> None:
        if isinstance(original, TwilioServiceException):
            msg, details = original.detail or original.title, None
        else:
            msg, details = original.msg, original.details
        super().__init__(original.status, original.uri, msg, original.code, original.method, details)
        self.retry_after = retry_after


def parse_retry_after(headers: Mapping[str, str] | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for: delta-seconds or an HTTP date (RFC 9110 10.2.3).

    None when there is no header or it cannot be read, so the caller falls back to its own
    backoff; a date in the past means "now" (0)."""
    raw = (headers or {}).get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT even when it does not say so
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
