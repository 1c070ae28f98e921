"""Reading and checking a "send later" time, in the zone the operator chose.

A time is always typed in an explicit zone (the browser's on the page, DEFAULT_TIMEZONE from the
command line), because "06:00" for a crew in Chicago is not 06:00 on the server. The refusals
are the operator's words, shown on the page and by `sms send` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ScheduleRefused(ValueError):
    """The time cannot be used; the message says why, in the operator's words."""


@dataclass(frozen=True)
class Later:
    """ "Send later": the UTC time (checked by `send_time`) and the zone the operator chose it in."""

    at: datetime
    zone: str


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (America/Chicago), or ScheduleRefused naming it."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleRefused(f"{name!r} is not a time zone; use a name such as America/Chicago or UTC") from None


def parse_local(text: str, zone_name: str) -> datetime:
    """`2026-12-03 06:00` (or the page's `2026-12-03T06:00`) in `zone_name`, as UTC.

    A wall-clock time the zone skips (clocks going forward) is refused rather than moved, so the
    operator never gets a send at a time they did not pick; a time that happens twice (clocks
    going back) is the first of the two."""
    tz = zone(zone_name)
    try:
        naive = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleRefused(f"{text!r} is not a date and time; write it as 2026-12-03 06:00") from None
    if naive.tzinfo is not None:
        raise ScheduleRefused("give the time without an offset, and its zone separately")
    local = naive.replace(tzinfo=tz)
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise ScheduleRefused(f"{naive:%Y-%m-%d %H:%M} does not exist in {tz.key}: the clocks skip it")
    return local.astimezone(UTC)


def check_send_at(when: datetime, *, now: datetime, max_days: int) -> None:
    """Refuse a time that has passed, or one more than `max_days` ahead (SCHEDULE_MAX_DAYS)."""
    if when <= now:
        raise ScheduleRefused(f"{when:%Y-%m-%d %H:%M} UTC has already passed; pick a time in the future")
    if when > now + timedelta(days=max_days):
        raise ScheduleRefused(f"that is more than {max_days} days ahead; pick a time within {max_days} days")


def send_time(text: str, zone_name: str, *, now: datetime, max_days: int) -> Later:
    """The time to send at, read and checked: what compose, `sms send --at` and an edit all use."""
    when = parse_local(text, zone_name)
    check_send_at(when, now=now, max_days=max_days)
    return Later(when, zone(zone_name).key)


def describe(when: datetime, zone_name: str) -> str:
    """'2026-12-03 06:00 America/Chicago (12:00 UTC)': the operator's zone first, UTC beside it."""
    tz = zone(zone_name)
    local = when.astimezone(tz)
    utc = when.astimezone(UTC)
    same_day = local.date() == utc.date()
    return (
        f"{local:%Y-%m-%d %H:%M} {tz.key} ({utc:%H:%M} UTC)"
        if same_day
        else (f"{local:%Y-%m-%d %H:%M} {tz.key} ({utc:%Y-%m-%d %H:%M} UTC)")
    )


def countdown(when: datetime, now: datetime) -> str:
    """'in 3 h 10 min', 'in 4 min 5 s', 'due now': the page's first text, which dashboard.js then
    keeps up to date in the same words. Within the hour it counts seconds, so it visibly ticks."""
    seconds = int((when - now).total_seconds())
    if seconds <= 0:
        return "due now"
    if seconds < 3600:
        minutes, secs = divmod(seconds, 60)
        return f"in {minutes} min {secs} s" if minutes else f"in {secs} s"
    minutes = -(-seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return "in " + " ".join(p for p in parts if p)
