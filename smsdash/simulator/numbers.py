"""The simulator's phone numbers: Twilio's documented magic test numbers plus our own.

Twilio's test credentials accept `From +15005550006` and fail these `To` numbers synchronously
(HTTP 400 at create). We add numbers in the +1500555030x range that are accepted and then end
`undelivered` or `failed` through their status callbacks, so a demo shows every outcome; the last
two digits echo the error code (…0303 -> 30003). Every other number is delivered.
"""

from __future__ import annotations

from dataclasses import dataclass

VALID_FROM = "+15005550006"

# To numbers rejected at create (HTTP 400), as Twilio documents for test credentials.
TO_INVALID = "+15005550001"  # 21211 invalid 'To' number
TO_UNROUTABLE = "+15005550002"  # 21612 cannot route to this number
TO_NO_INTERNATIONAL = "+15005550003"  # 21408 no permission for the region
TO_BLOCKED = "+15005550004"  # 21610 recipient replied STOP
TO_NOT_MOBILE = "+15005550009"  # 21614 not a mobile number

# From numbers rejected at create, as Twilio documents for test credentials.
FROM_INVALID = "+15005550001"  # 21212 invalid 'From' number
FROM_NOT_OWNED = "+15005550007"  # 21606 'From' is not SMS-capable / not yours
FROM_QUEUE_FULL = "+15005550008"  # 21611 the From number's queue is full

# Our own: accepted, `sent`, then a final failure delivered by callback (and by fetch).
TO_UNREACHABLE = "+15005550303"  # undelivered 30003 unreachable handset
TO_UNKNOWN_HANDSET = "+15005550305"  # undelivered 30005 unknown destination handset
TO_LANDLINE = "+15005550306"  # undelivered 30006 landline or unreachable carrier
TO_CARRIER_FILTERED = "+15005550307"  # undelivered 30007 carrier filtered (spam)
TO_FAILED = "+15005550308"  # failed 30008 unknown error, after `sent`
TO_NO_RECEIPT = "+15005550310"  # stays `sent`: the carrier never returns a receipt
# Delivered, then the recipient texts back AUTO_REPLY_BODY `auto_reply_delay` seconds later
# (knob, 3 s by default), to the inbound URL: the inbox fills with no one holding a phone.
TO_AUTO_REPLY = "+15005550320"
AUTO_REPLY_BODY = "Thanks, got it! See you there."

ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21211: "Invalid 'To' Phone Number",
    21212: "Invalid 'From' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number "
    "for this destination/account",
    21608: "The number is unverified. Trial accounts cannot send messages to unverified numbers; "
    "verify it at twilio.com/user/account/phone-numbers/verified, or purchase a Twilio number "
    "to send messages to unverified numbers",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21612: "The 'To' phone number is not currently reachable via SMS",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30036: "Validity Period Expired",
}


@dataclass(frozen=True)
class Outcome:
    """How an accepted message ends: its final status (None = no final callback) and error code."""

    final_status: str | None
    error_code: int | None = None


CREATE_ERRORS_TO: dict[str, int] = {
    TO_INVALID: 21211,
    TO_UNROUTABLE: 21612,
    TO_NO_INTERNATIONAL: 21408,
    TO_BLOCKED: 21610,
    TO_NOT_MOBILE: 21614,
}

CREATE_ERRORS_FROM: dict[str, int] = {
    FROM_INVALID: 21212,
    FROM_NOT_OWNED: 21606,
    FROM_QUEUE_FULL: 21611,
}

OUTCOMES: dict[str, Outcome] = {
    TO_UNREACHABLE: Outcome("undelivered", 30003),
    TO_UNKNOWN_HANDSET: Outcome("undelivered", 30005),
    TO_LANDLINE: Outcome("undelivered", 30006),
    TO_CARRIER_FILTERED: Outcome("undelivered", 30007),
    TO_FAILED: Outcome("failed", 30008),
    TO_NO_RECEIPT: Outcome(None),
}

DELIVERED = Outcome("delivered")


def outcome_for(to: str) -> Outcome:
    """The final outcome the simulator plays for an accepted message to `to`."""
    return OUTCOMES.get(to, DELIVERED)
