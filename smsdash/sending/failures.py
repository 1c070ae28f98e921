"""What a failed Messages create means for the send job: give up, or try again later.

Twilio answers a create with one of three kinds of failure. A 4xx with a permanent code (invalid
number, STOP, trial restrictions) will fail the same way every time. A queue-full code or a 5xx
is about Twilio's load, not the message, so a later attempt can succeed. A timeout or a dropped
connection says nothing: the request may or may not have reached Twilio, so before the next
attempt the job must look for the message instead of creating a second one.

A 429 is apart from all three: Twilio processed nothing and asks the account to slow down. It is
`rate_limited`: the sender pauses (ratelimit.py) and the delivery waits without using up a try,
as does one that found sending paused (SendPaused) before it called Twilio at all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import redis
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from smsdash.sending.ratelimit import SendPaused
from smsdash.twilio.error_codes import explain
from smsdash.twilio.too_many_requests import TooManyRequests


@dataclass(frozen=True)
class SendFailure:
    """One failed create, classified.

    `code` is Twilio's error code when it sent one; `may_have_reached` is True when Twilio may
    have created the message despite the failure (timeouts, dropped connections, 5xx answers).
    `rate_limited` is True for a 429 or a send held by the pause one set; `retry_after` is the
    wait a 429's Retry-After header asked for.
    """

    retryable: bool
    code: int | None
    reason: str
    may_have_reached: bool
    rate_limited: bool = False
    retry_after: float | None = None


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
    if isinstance(exc, SendPaused):
        return SendFailure(
            True,
            20429,
            f"sending is paused for {exc.remaining:.1f} s more: Twilio answered 429 (too many requests) to a recent send",
            False,
            rate_limited=True,
        )
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
        retry_after = exc.retry_after if isinstance(exc, TooManyRequests) else None
        return SendFailure(
            True, code or 20429, f"Twilio answered HTTP 429: {text}", False, rate_limited=True, retry_after=retry_after
        )
    return SendFailure(explain(code).retryable, code, text or f"Twilio answered HTTP {status}", False)


def backoff_delay(failed_tries: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after `failed_tries` failures: exponential from `base`, capped at `cap`,
    with "equal jitter" (half fixed, half random) so a burst of failures (a 5xx outage) does not
    retry in lockstep. (429s wait for the shared pause instead: resume_delay.)"""
    ceiling: float = min(cap, base * (2 ** max(failed_tries - 1, 0)))  # int ** int is typed Any
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def resume_delay(paused_for: float, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds until a rate-limited delivery tries again: when the shared pause (`paused_for`
    seconds left) is over, at a random moment over another half of it, so the deliveries one pause
    held do not all come back in the same instant. At least `base` (the pause may be over, or
    unknown), at most `cap`: the stuck-work recovery takes a longer wait for a dead worker, and a
    delivery that comes back during a longer pause just finds it again and waits on."""
    wait = max(paused_for, base)
    return min(cap, wait + (rng or random).uniform(0, wait / 2))


def rate_limit_gave_up(seconds: float) -> str:
    """The failure detail for a delivery that waited out 429s for SEND_RATE_LIMIT_GIVE_UP_SECONDS."""
    return (
        f"gave up after {_duration_words(seconds)} of Twilio answering 429 (too many requests): "
        "Twilio never took this message, so it was not sent"
    )


def _duration_words(seconds: float) -> str:
    """A duration as an operator reads it: "10 hours", "90 minutes", "45 seconds"."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size or seconds == size:
            count = round(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    count = round(seconds)
    return f"{count} second{'' if count == 1 else 's'}"
