"""Reading a "send later" time in an explicit zone, and the refusals: past, too far ahead,
a wall-clock time the zone skips, a zone that does not exist."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smsdash.schedules.when import ScheduleRefused, describe, send_time

NOW = datetime(2026, 12, 2, 7, 30, tzinfo=UTC)


def test_a_local_time_is_read_in_its_zone() -> None:
    # 06:00 in Chicago in December is 12:00 UTC (CST, UTC-6); the page's datetime-local works too.
    later = send_time("2026-12-03 06:00", " America/Chicago", now=NOW, max_days=35)
    assert (later.at, later.zone) == (datetime(2026, 12, 3, 12, 0, tzinfo=UTC), "America/Chicago")
    assert send_time("2026-12-03T06:00", "America/Chicago", now=NOW, max_days=35).at.hour == 12


def test_a_time_in_the_past_is_refused() -> None:
    with pytest.raises(ScheduleRefused, match="already passed"):
        send_time("2026-12-02 01:00", "America/Chicago", now=NOW, max_days=35)  # 07:00 UTC


def test_a_time_beyond_the_limit_is_refused() -> None:
    assert send_time("2027-01-06 06:00", "UTC", now=NOW, max_days=35)
    with pytest.raises(ScheduleRefused, match="more than 35 days ahead"):
        send_time("2027-01-06 08:00", "UTC", now=NOW, max_days=35)


@pytest.mark.parametrize(
    ("text", "zone", "reason"),
    [
        ("2027-03-14 02:30", "America/Chicago", "does not exist in America/Chicago"),  # spring forward
        ("tomorrow", "UTC", "not a date and time"),
        ("2026-12-03 06:00", "Mars/Olympus", "not a time zone"),
        ("2026-12-03 06:00+01:00", "UTC", "without an offset"),
    ],
)
def test_bad_input_is_refused_with_the_reason(text: str, zone: str, reason: str) -> None:
    with pytest.raises(ScheduleRefused, match=reason):
        send_time(text, zone, now=datetime(2027, 3, 1, tzinfo=UTC), max_days=35)


def test_describe_shows_the_operators_zone_and_utc() -> None:
    when = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert describe(when, "America/Chicago") == "2026-12-03 06:00 America/Chicago (12:00 UTC)"
    assert describe(datetime(2026, 12, 3, 3, 0, tzinfo=UTC), "America/Chicago") == (
        "2026-12-02 21:00 America/Chicago (2026-12-03 03:00 UTC)"
    )
