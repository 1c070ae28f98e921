"""A 429 from Messages create keeps the Retry-After the SDK's own exception drops."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from twilio.base.exceptions import TwilioRestException

from smsdash.simulator import Simulator
from smsdash.twilio.messages_api import send_sms
from smsdash.twilio.too_many_requests import TooManyRequests, parse_retry_after

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("Thu, 26 Nov 2026 12:00:45 GMT", 45.0),  # an HTTP date
        ("Thu, 26 Nov 2026 11:59:00 GMT", 0.0),  # in the past: go now
        ("-5", 0.0),
        ("soon", None),
        ("nan", None),
        ("", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(value: str, seconds: float | None) -> None:
    assert parse_retry_after({"Retry-After": value}, now=NOW) == seconds


def test_no_header_means_no_wait_was_asked_for() -> None:
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_send_sms_raises_a_429_with_twilios_retry_after(twilio_app: Flask, simulator: Simulator) -> None:
    simulator.set_knobs(error_429_rate=1.0, retry_after=2.5)
    with twilio_app.app_context(), pytest.raises(TooManyRequests) as info:
        send_sms("+14155550101", "hello", None)
    assert isinstance(info.value, TwilioRestException)  # whatever handles the SDK's error still does
    assert (info.value.status, info.value.code, info.value.retry_after) == (429, 20429, 2.5)
    assert "Too Many Requests" in info.value.msg

    simulator.set_knobs(retry_after=0)
    with twilio_app.app_context(), pytest.raises(TooManyRequests) as info:
        send_sms("+14155550101", "hello", None)
    assert info.value.retry_after is None
