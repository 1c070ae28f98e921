"""Classifying a failed create: the decision between giving up, retrying, and looking first."""

from __future__ import annotations

import random

import redis
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from smsdash.sending.failures import backoff_delay, classify, rate_limit_gave_up, resume_delay
from smsdash.sending.ratelimit import SendPaused
from smsdash.twilio.too_many_requests import TooManyRequests

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


def test_429s_and_a_paused_sender_are_rate_limited_the_rest_are_not() -> None:
    asked = classify(TooManyRequests(TwilioRestException(429, URI, "Too Many Requests", 20429, "POST"), 12.0))
    assert asked is not None and asked.rate_limited and (asked.code, asked.retry_after) == (20429, 12.0)
    plain = classify(service_error(429, 20429))  # a 429 from elsewhere than send_sms (a look-up)
    assert plain is not None and plain.rate_limited and plain.retry_after is None
    paused = classify(SendPaused(40.0))
    assert paused is not None and paused.rate_limited and not paused.may_have_reached and paused.code == 20429
    assert "40.0 s" in paused.reason
    for exc in (
        TwilioRestException(400, URI, "queue full", 21611, "POST"),
        TwilioRestException(503, URI, "Service Unavailable", 503, "POST"),
        requests.exceptions.ReadTimeout("read timed out"),
    ):
        failure = classify(exc)
        assert failure is not None and not failure.rate_limited


def test_a_rate_limited_delivery_comes_back_after_the_pause_spread_out_and_never_too_late() -> None:
    rng = random.Random(3)
    delays = [resume_delay(30.0, 2.0, 300.0, rng) for _ in range(50)]
    assert all(30.0 <= d <= 45.0 for d in delays) and max(delays) - min(delays) > 5
    assert 2.0 <= resume_delay(0.0, 2.0, 300.0, rng) <= 3.0  # no pause known: at least the base
    assert resume_delay(3600.0, 2.0, 300.0, rng) == 300.0  # it finds a longer pause again and waits on


def test_the_give_up_reason_is_in_plain_words() -> None:
    assert rate_limit_gave_up(36000).startswith("gave up after 10 hours of Twilio answering 429 (too many requests)")
    assert "after 90 minutes " in rate_limit_gave_up(5400)
    assert "after 1 hour " in rate_limit_gave_up(3600)
    assert "after 45 seconds " in rate_limit_gave_up(45)


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
