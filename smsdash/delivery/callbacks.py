"""A Twilio status callback, read from its form params and applied through the state machine.

The webhook applies callbacks as they arrive and the pending inbox applies the ones that came
before their delivery's SID was known; both read the params here, so a callback means the same
thing whichever path it takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from smsdash.delivery.status import KNOWN, Outcome, apply_status
from smsdash.twilio.error_codes import explain


class MalformedCallback(ValueError):
    """The params are not a status callback we can apply (missing SID or status, unknown status)."""


@dataclass(frozen=True)
class StatusCallback:
    """The parts of a status callback the state machine needs, plus the raw params for the timeline."""

    sid: str
    status: str
    error_code: int | None
    occurred_at: datetime | None
    payload: dict[str, Any]

    @property
    def sender(self) -> str:
        """Who sent the message (its Messaging Service, else its From number): a 21610 opts the
        recipient out of this sender."""
        return self.payload.get("MessagingServiceSid") or self.payload.get("From") or ""

    @property
    def error_message(self) -> str | None:
        """The catalogue's plain meaning for a failure, shown to operators beside the code."""
        return explain(self.error_code).meaning if self.error_code is not None else None

    def apply(self, delivery_id: int, *, record_sid: bool) -> Outcome:
        """Apply to `delivery_id` in the caller's transaction; `record_sid` when it has no SID yet."""
        return apply_status(
            delivery_id,
            self.status,
            source="twilio",
            error_code=self.error_code,
            error_message=self.error_message,
            occurred_at=self.occurred_at,
            payload=self.payload,
            sid=self.sid if record_sid else None,
            sender=self.sender,
        )


def carrier_time(raw: str | None) -> datetime | None:
    """RawDlrDoneDate (YYMMDDhhmm, sometimes with seconds, UTC) as a datetime; None if absent or odd.

    It is the carrier's own clock, so a value we cannot read is dropped rather than refused:
    the callback's status still matters more than its timestamp.
    """
    if not raw or not raw.isascii() or not raw.isdigit() or len(raw) not in (10, 12):
        return None
    # Read by hand, not with strptime: this runs for every callback, and strptime takes a global
    # lock and looks up the locale each call. Two-digit years as strptime's %y reads them.
    year = int(raw[0:2])
    try:
        return datetime(
            year + (2000 if year < 69 else 1900),
            int(raw[2:4]),
            int(raw[4:6]),
            int(raw[6:8]),
            int(raw[8:10]),
            int(raw[10:12] or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _error_code(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) != 0 else None


def parse_status_callback(params: Mapping[str, str]) -> StatusCallback:
    """Read a status callback; raise MalformedCallback when it cannot be applied.

    Twilio sends both MessageSid/MessageStatus and the legacy SmsSid/SmsStatus; either will do.
    """
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    if not sid or not status:
        raise MalformedCallback("a status callback needs MessageSid and MessageStatus")
    if status not in KNOWN:
        raise MalformedCallback(f"unknown message status {status!r}")
    return StatusCallback(
        sid=sid,
        status=status,
        error_code=_error_code(params.get("ErrorCode")),
        occurred_at=carrier_time(params.get("RawDlrDoneDate")),
        payload=dict(params),
    )
