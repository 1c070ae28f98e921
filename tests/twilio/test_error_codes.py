"""The error-code catalogue: every code DESIGN.md names is explained, and retry advice is right."""

from __future__ import annotations

import pytest

from smsdash.twilio.error_codes import explain, known_codes

DESIGN_CODES = [
    20003,
    20429,
    21211,
    21408,
    21606,
    21608,
    21610,
    21611,
    21612,
    21614,
    30001,
    30003,
    30005,
    30006,
    30007,
    30008,
    30032,
    30034,
    30036,
]
DELIVERY_CODES = [30002, 30004, 30009, 30010, 30017, 30019, 30022, 30023, 30024, 30027]


@pytest.mark.parametrize("code", DESIGN_CODES + DELIVERY_CODES)
def test_catalogued_codes_have_meaning_action_and_link(code: int) -> None:
    info = explain(code)
    assert code in known_codes()
    assert info.code == code
    assert info.meaning and str(code) not in info.meaning
    assert info.action
    assert info.url == f"https://www.twilio.com/docs/api/errors/{code}"


@pytest.mark.parametrize("code", [20429, 21611, 30001, 30003, 30008, 30022, 30036])
def test_transient_errors_are_retryable(code: int) -> None:
    assert explain(code).retryable


@pytest.mark.parametrize(
    "code", [20003, 21211, 21408, 21606, 21608, 21610, 21612, 21614, 30005, 30006, 30007, 30032, 30034]
)
def test_permanent_errors_are_not_retryable(code: int) -> None:
    assert not explain(code).retryable


def test_unknown_code_shows_the_code_and_twilios_link() -> None:
    info = explain(39999)
    assert "39999" in info.meaning
    assert info.url == "https://www.twilio.com/docs/api/errors/39999"
    assert info.url in info.action
    assert not info.retryable


def test_no_code_is_explained_without_a_link_to_a_code() -> None:
    info = explain(None)
    assert info.code is None and info.meaning and not info.retryable
