"""Classifying a failed create: the decision between giving up, retrying, and looking first."""

from __future__ import annotations

import random

import redis
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from smsdash.sending.failures import backoff_delay, classify

URI = "/2010-04-01/Accounts/AC123/Messages.json"


def service_error(status: int, code: int) -> TwilioServiceException:
    return TwilioServiceException(
        f"https://www.twilio.com/docs/errors/{code}",
        "Problem",
        status,
        code,
        detail="details here",
        method="POST",
        uri=URI,
    )


def test_permanent_codes_from_either_exception_are_not_retried() -> None:
    for exc in (TwilioRestException(400, URI, "Invalid 'To' Phone Number", 21211, "POST"), service_error(400, 21211)):
        failure = classify(exc)
        assert failure is not None
        assert (failure.retryable, failure.code, failure.may_have_reached) == (False, 21211, False)
        assert failure.reason


def test_queue_full_and_429_are_retried_without_looking_first() -> None:
    for exc in (
        TwilioRestException(400, URI, "queue full", 21611, "POST"),
        service_error(429, 20429),
        TwilioRestException(429, URI, "Too Many Requests", 429, "POST"),
    ):
        failure = classify(exc)
        assert failure is not None and failure.retryable and not failure.may_have_reached


def test_server_errors_are_retried_and_may_have_created_the_message() -> None:
    # The SDK fills a missing code with the HTTP status: that is not a Twilio error code.
    failure = classify(TwilioRestException(503, URI, "Service Unavailable", 503, "POST"))
    assert failure is not None
    assert (failure.retryable, failure.code, failure.may_have_reached) == (True, None, True)
    assert "503" in failure.reason


def test_network_failures() -> None:
    connect = classify(requests.exceptions.ConnectTimeout("connect timed out"))
    read = classify(requests.exceptions.ReadTimeout("read timed out"))
    dropped = classify(requests.exceptions.ConnectionError("connection reset"))
    assert connect is not None and connect.retryable and not connect.may_have_reached
    assert read is not None and read.retryable and read.may_have_reached
    assert dropped is not None and dropped.retryable and dropped.may_have_reached
    limiter = classify(redis.ConnectionError("Redis is down"))
    assert limiter is not None and limiter.retryable and not limiter.may_have_reached
    assert classify(ValueError("a bug")) is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for tries, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 30.0)):
        delays = [backoff_delay(tries, 2.0, 30.0, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len({round(d, 6) for d in delays}) > 1
