"""Phone numbers: the E.164 fast path answers exactly what phonenumbers' full parse answers."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smsdash.sms import phones
from smsdash.sms.phones import InvalidNumber, normalize


def _full(text: str) -> str:
    """What the full path (phonenumbers.parse) says: the E.164 number, or the refusal's reason."""
    try:
        return phones._parsed(text, text, "US")
    except InvalidNumber as exc:
        return f"refused: {exc.reason}"


def _normalized(text: str) -> str:
    try:
        return normalize(text, "US")
    except InvalidNumber as exc:
        return f"refused: {exc.reason}"


@settings(max_examples=3000, deadline=None)
@given(st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z"))
@example("+14155550101")  # US, a valid number
@example("+114155550101")  # the US national prefix 1 written after the country code: parse strips it
@example("+390612345678")  # Italy keeps the leading 0 of a national number
@example("+447911123456")  # GB mobile
@example("+15005550006")  # Twilio's magic test number, invalid in the numbering plan
@example("+78001234567")  # Russia's national prefix is 8
@example("+8613800138000")  # China, a three-digit country code's neighbour
@example("+88213")  # too short
def test_a_number_written_in_e164_gets_what_the_full_parse_gives(text: str) -> None:
    assert _normalized(text) == _full(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("(415) 555-0101", "+14155550101"), (" +1 415 555 0101 ", "+14155550101"), ("+14155550101", "+14155550101")],
)
def test_numbers_as_typed_are_normalised(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_the_fast_path_skips_the_parser_for_a_valid_e164_number(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("phonenumbers.parse called for a number already in E.164")

    monkeypatch.setattr(phones.phonenumbers, "parse", refuse)
    assert normalize("+14155550101") == "+14155550101"
