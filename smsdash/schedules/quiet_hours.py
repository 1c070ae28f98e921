"""Quiet hours: nobody is texted inside QUIET_HOURS (e.g. 21:00-08:00) in their own local time.

The recipient's zone is guessed from the number (sms.phones.time_zones). A number whose prefix
spans several zones waits for the latest of their openings, so it is texted early in none of
them; a number whose zone is unknown is read in DEFAULT_TIMEZONE. A delivery held this way is
simply `scheduled` with a later `send_after`: the release task sends it when the window opens,
and until then it is not in Redis, so it takes no share of the worker's send rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from smsdash.extensions import db
from smsdash.models import Delivery, Message, utcnow
from smsdash.schedules.when import countdown, describe
from smsdash.sms.phones import time_zones


@dataclass(frozen=True)
class QuietHours:
    """A daily window in local time; it may wrap midnight (21:00-08:00)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str | None) -> QuietHours | None:
        """'21:00-08:00' -> the window; empty or unset -> None (quiet hours off)."""
        if not text or not text.strip():
            return None
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError:
            raise ValueError(f"QUIET_HOURS must look like 21:00-08:00, not {text!r}") from None
        if start == end:
            raise ValueError("QUIET_HOURS must start and end at different times")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def opens(self, at: datetime, zone: ZoneInfo) -> datetime | None:
        """When the window next opens in `zone`, if `at` falls inside it there; else None."""
        local = at.astimezone(zone)
        now = local.time()
        inside = self.start <= now < self.end if self.start < self.end else now >= self.start or now < self.end
        if not inside:
            return None
        day = local.date() if now < self.end else local.date() + timedelta(days=1)
        # Built on the wall clock, then resolved: a DST change overnight still opens at 08:00 local.
        return datetime.combine(day, self.end, zone)


@dataclass(frozen=True)
class Hold:
    """A delivery held for quiet hours: when it may go, and the zone that decided it."""

    until: datetime
    zone: str


def hold_for(number: str, at: datetime, window: QuietHours | None, default_zone: str) -> Hold | None:
    """The hold of a text to `number` due at `at` (None: it may go then), the latest opening
    among the number's zones."""
    if window is None:
        return None
    holds = [
        Hold(opening, name)
        for name in time_zones(number) or (default_zone,)
        if (opening := window.opens(at, ZoneInfo(name))) is not None
    ]
    return max(holds, key=lambda h: h.until) if holds else None


def holds(numbers: Iterable[str], at: datetime) -> dict[str, Hold]:
    """The numbers among `numbers` that QUIET_HOURS holds at `at`, with their holds."""
    config = current_app.config
    window = QuietHours.parse(config.get("QUIET_HOURS"))
    if window is None:
        return {}
    found = {n: hold_for(n, at, window, config["DEFAULT_TIMEZONE"]) for n in numbers}
    return {n: h for n, h in found.items() if h is not None}


def describe_hold(hold: Hold) -> str:
    """A held delivery's timeline note."""
    window = QuietHours.parse(current_app.config.get("QUIET_HOURS"))
    return f"held for quiet hours ({window} in {hold.zone}): to be sent {describe(hold.until, hold.zone)}"


def waiting_note(message: Message) -> str | None:
    """'12 wait for quiet hours: 08:00 America/Los_Angeles, in 3 h 10 min' for the message page
    (the next opening; None when nobody waits). Held means released later than the message's
    own time, so a plain scheduled send is not counted."""
    own_time = message.send_at or message.created_at
    count, until = db.session.execute(
        select(func.count(), func.min(Delivery.send_after)).where(
            Delivery.message_id == message.id, Delivery.status == "scheduled", Delivery.send_after > own_time
        )
    ).one()
    if not count or until is None:
        return None
    number = db.session.scalar(
        select(Delivery.to_number).where(Delivery.message_id == message.id, Delivery.send_after == until).limit(1)
    )
    window = QuietHours.parse(current_app.config.get("QUIET_HOURS"))
    hold = hold_for(number or "", own_time, window, current_app.config["DEFAULT_TIMEZONE"]) if window else None
    zone = ZoneInfo(hold.zone if hold else "UTC")
    return f"{count} wait{'s' if count == 1 else ''} for quiet hours: {until.astimezone(zone):%H:%M} {zone.key}, {countdown(until, utcnow())}"
