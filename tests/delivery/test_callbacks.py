"""Reading a status callback's params: what is required, and what odd values are dropped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smsdash.delivery.callbacks import MalformedCallback, carrier_time, parse_status_callback

SID = "SM" + "f" * 32


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2611262305", datetime(2026, 11, 26, 23, 5, tzinfo=UTC)),
        ("261126230559", datetime(2026, 11, 26, 23, 5, 59, tzinfo=UTC)),
        ("2613262305", None),
        ("26112623", None),
        ("", None),
        (None, None),
        ("²611262305", None),
    ],
)
def test_carrier_time(raw: str | None, expected: datetime | None) -> None:
    assert carrier_time(raw) == expected


def test_legacy_sms_params_and_case_are_accepted() -> None:
    callback = parse_status_callback({"SmsSid": SID, "SmsStatus": "Delivered", "ErrorCode": "0"})
    assert (callback.sid, callback.status, callback.error_code) == (SID, "delivered", None)


@pytest.mark.parametrize("code, expected", [("30003", 30003), ("", None), ("abc", None), ("３０００３", None)])
def test_error_code_and_its_meaning(code: str, expected: int | None) -> None:
    callback = parse_status_callback({"MessageSid": SID, "MessageStatus": "undelivered", "ErrorCode": code})
    assert callback.error_code == expected
    assert (callback.error_message is None) == (expected is None)


@pytest.mark.parametrize(
    "params", [{}, {"MessageSid": SID}, {"MessageStatus": "sent"}, {"MessageSid": SID, "MessageStatus": "received"}]
)
def test_unusable_callbacks_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(MalformedCallback):
        parse_status_callback(params)
