"""What a failed Messages create means for the send job: give up, or try again later.

Twilio answers a create with one of three kinds of failure. A 4xx with a permanent code (invalid
number, STOP, trial restrictions) will fail the same way every time. A 429, a queue-full code or
a 5xx is about Twilio's load, not the message, so a later attempt can succeed. A timeout or a
dropped connection says nothing: the request may or may not have reached Twilio, so before the
next attempt the job must look for the message instead of creating a second one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import redis
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from smsdash.twilio.error_codes import explain


@dataclass(frozen=True)
class SendFailure:
    """One failed create, classified.

    `code` is Twilio's error code when it sent one; `may_have_reached` is True when Twilio may
    have created the message despite the failure (timeouts, dropped connections, 5xx answers).
    """

    retryable: bool
    code: int | None
    reason: str
    may_have_reached: bool


def classify(exc: BaseException) -> SendFailure | None:
    """Classify an exception from `send_sms`; None when it is not a Twilio or network failure."""
    if isinstance(exc, (TwilioRestException, TwilioServiceException)):
        return _classify_api_error(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        # No connection was made, so no request reached Twilio.
        return SendFailure(True, None, f"could not connect to Twilio in time ({exc})", False)
    if isinstance(exc, requests.exceptions.Timeout):
        return SendFailure(True, None, f"Twilio did not answer in time ({exc})", True)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return SendFailure(True, None, f"the connection to Twilio failed ({exc})", True)
    if isinstance(exc, redis.RedisError):
        # Only the send-rate limiter talks to Redis before the create, so nothing was sent.
        return SendFailure(True, None, f"the send-rate limiter could not reach Redis ({exc})", False)
    return None


def _classify_api_error(exc: TwilioRestException | TwilioServiceException) -> SendFailure:
    status = int(exc.status or 0)
    if isinstance(exc, TwilioServiceException):
        text = exc.detail or exc.title
    else:
        text = exc.msg
    # The SDK fills a missing error code with the HTTP status; that is not a Twilio code.
    code = exc.code if exc.code and exc.code != status else None
    if status >= 500:
        return SendFailure(True, code, f"Twilio answered HTTP {status}: {text}", True)
    if status == 429:
        return SendFailure(True, code or 20429, f"Twilio answered HTTP 429: {text}", False)
    return SendFailure(explain(code).retryable, code, text or f"Twilio answered HTTP {status}", False)


def backoff_delay(failed_tries: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after `failed_tries` failures: exponential from `base`, capped at `cap`,
    with "equal jitter" (half fixed, half random) so a burst of 429s does not retry in lockstep."""
    ceiling: float = min(cap, base * (2 ** max(failed_tries - 1, 0)))  # int ** int is typed Any
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
