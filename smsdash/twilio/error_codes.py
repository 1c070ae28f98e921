"""Twilio error codes in plain words: what happened, whether a retry can help, what to do.

One catalogue serves two readers. The send job asks `explain(code).retryable` to decide between
a retry with backoff and a permanent failure; the dashboard shows `meaning` and `action` next
to a failed delivery, with Twilio's page for the code one click away. Codes we have not
catalogued still get a useful answer: the code itself and Twilio's link, never a blank.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

from smsdash.sms.body import MAX_BODY_CHARS

DOCS_URL = "https://www.twilio.com/docs/api/errors"


@dataclass(frozen=True)
class ErrorInfo:
    """One Twilio error code explained for an operator."""

    code: int | None
    meaning: str
    retryable: bool
    action: str
    url: str


# code: (meaning, retryable, action). "Retryable" means sending the same message again, later,
# can succeed without anyone changing anything; everything else needs a person to act first.
_CATALOGUE: dict[int, tuple[str, bool, str]] = {
    # Account and API errors, answered when the message is created.
    20003: (
        "Twilio rejected the account credentials.",
        False,
        "Check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (run `flask --app wsgi twilio check`).",
    ),
    20429: (
        "Too many requests to Twilio at once.",
        True,
        "Nothing to do at first: sending slows down and the message waits its turn, without using up its"
        " attempts, for up to SEND_RATE_LIMIT_GIVE_UP_SECONDS (10 hours); after that it fails and Retry sends"
        " it again. Lower SEND_CONCURRENCY, or set SEND_RATE_PER_SECOND, if it keeps happening.",
    ),
    20500: ("Twilio had an internal error.", True, "Nothing to do: the send is retried."),
    20503: ("Twilio was temporarily unavailable.", True, "Nothing to do: the send is retried."),
    21211: (
        "The recipient's phone number is not valid.",
        False,
        "Correct the number (it must be a real number in international format) and send again.",
    ),
    21266: (
        "The recipient's number is the same as the sender's.",
        False,
        "Send to a different number; a number cannot text itself.",
    ),
    21408: (
        "Sending to this country is not enabled on the Twilio account.",
        False,
        "Enable the country under Messaging > Settings > Geo permissions in the Twilio Console.",
    ),
    21602: ("The message body was empty.", False, "Write a message and send again."),
    21603: (
        "No sender was given (neither a From number nor a Messaging Service).",
        False,
        "Set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID.",
    ),
    21606: (
        "The sender number cannot send SMS to this destination.",
        False,
        "Use an SMS-capable Twilio number that belongs to this account (check TWILIO_FROM_NUMBER).",
    ),
    21608: (
        "A trial account can only text verified numbers, and this one is not verified.",
        False,
        "Verify the number in the Twilio Console, or upgrade the account.",
    ),
    21610: (
        "The recipient replied STOP and has unsubscribed from this sender.",
        False,
        "Do not resend. The number is recorded as opted out; it can opt back in by texting START.",
    ),
    21611: (
        "The sender's queue of waiting messages is full.",
        True,
        "Nothing to do now: the send is retried later. Send big batches more slowly or add senders.",
    ),
    21612: (
        "Twilio cannot route a message between this sender and this recipient.",
        False,
        "Check the number, and that the sender type (long code, short code, alphanumeric) works in that country.",
    ),
    21614: (
        "The recipient's number is not a mobile number.",
        False,
        "Use a mobile number for this contact; landlines cannot receive SMS.",
    ),
    21617: (f"The message is longer than {MAX_BODY_CHARS} characters.", False, "Shorten the message and send again."),
    # Delivery errors, reported by status callbacks after Twilio accepted the message.
    30001: (
        "The message waited too long in Twilio's queue (queue overflow).",
        True,
        "Send again later, and send large batches more slowly.",
    ),
    30002: (
        "The Twilio account was suspended before this message went out.",
        False,
        "Check Twilio's emails and the account's billing, then contact Twilio Support.",
    ),
    30003: (
        "The recipient's phone was unreachable (off, or out of coverage).",
        True,
        "Try again later; if it keeps failing, confirm the number with the recipient.",
    ),
    30004: (
        "The message was blocked (the recipient blocked the sender, or the carrier did).",
        False,
        "Do not resend; ask the recipient to unblock you through another channel.",
    ),
    30005: (
        "The recipient's number is unknown to the carrier or no longer in service.",
        False,
        "Confirm the number with the recipient and update the contact.",
    ),
    30006: (
        "The number is a landline or the carrier cannot receive SMS.",
        False,
        "Use a mobile number for this contact.",
    ),
    30007: (
        "The carrier filtered the message (spam or policy).",
        False,
        "Review the wording and links, and register your sender (10DLC or toll-free verification).",
    ),
    30008: (
        "The carrier reported an unknown error.",
        True,
        "Try again later; if it persists, contact Twilio Support with the message SID.",
    ),
    30009: ("Part of a multi-part message went missing.", True, "Send again; a shorter message helps."),
    30010: (
        "The message would cost more than the maximum price that was set.",
        False,
        "Raise or remove the MaxPrice setting, then send again.",
    ),
    30011: ("The recipient's phone cannot receive MMS.", False, "Send text only."),
    30017: ("The carrier's network was congested.", True, "Try again later."),
    30018: (
        "The destination carrier requires the sender ID to be registered first.",
        False,
        "Register the sender ID for that country in the Twilio Console.",
    ),
    30019: ("The message is larger than the carrier accepts.", False, "Shorten the message and send again."),
    30022: (
        "The sending rate exceeded what your 10DLC campaign allows.",
        True,
        "Send more slowly (lower SEND_RATE_PER_SECOND) and try again.",
    ),
    30023: (
        "Your 10DLC brand reached its daily message cap.",
        True,
        "Wait for the cap to reset (daily), or raise the cap by improving your brand's trust score.",
    ),
    30024: (
        "The carrier has not provisioned your sender number yet.",
        False,
        "Wait for provisioning after registration; if it persists, contact Twilio Support.",
    ),
    30027: (
        "T-Mobile's daily limit for your brand was reached.",
        True,
        "Wait for the daily limit to reset, then send again.",
    ),
    30032: (
        "The toll-free sender number is not verified.",
        False,
        "Complete toll-free verification for the number in the Twilio Console.",
    ),
    30034: (
        "The sender is a US 10DLC number that is not registered to a campaign.",
        False,
        "Register the number with an A2P 10DLC campaign in the Twilio Console.",
    ),
    30036: (
        "Not sent: it was still waiting in Twilio's queue when its time limit (the message's "
        "\"don't deliver after\", Twilio's validity period) ran out, so Twilio dropped it.",
        True,
        "If it is still worth sending, send it again; for a large send, give a longer limit or send more slowly.",
    ),
    30037: ("Outbound messaging is disabled for this account.", False, "Contact Twilio Support."),
    30038: (
        "The message was filtered because it looked like a one-time passcode.",
        False,
        "Do not send one-time passcodes this way; use Twilio Verify.",
    ),
}


def error_url(code: int) -> str:
    """Twilio's documentation page for `code`."""
    return f"{DOCS_URL}/{code}"


def explain(code: int | None) -> ErrorInfo:
    """Explain a Twilio error code; unknown codes keep the code and Twilio's link.

    An unknown code is treated as not retryable: resending blindly risks a double send for
    no reason anyone understands, and the link lets an operator decide.
    """
    if code is None:
        return ErrorInfo(
            None,
            "Twilio gave no error code.",
            False,
            "Open the message in Twilio's Messaging Logs for details.",
            DOCS_URL,
        )
    known = _CATALOGUE.get(code)
    if known is None:
        return ErrorInfo(
            code,
            f"Twilio error {code} (not in our catalogue).",
            False,
            f"See Twilio's description at {error_url(code)}.",
            error_url(code),
        )
    meaning, retryable, action = known
    return ErrorInfo(code, meaning, retryable, action, error_url(code))


def known_codes() -> frozenset[int]:
    """Every code the catalogue explains (for the UI's legend and for tests)."""
    return frozenset(_CATALOGUE)


def twilio_error(exc: Exception) -> tuple[int | None, str]:
    """Twilio's error code and message for an SDK exception (fetches raise TwilioRestException,
    list pages a bare TwilioException carrying the HTTP response), or (None, a description)."""
    if isinstance(exc, TwilioRestException):
        return exc.code or exc.status, str(exc.msg)
    if isinstance(exc, TwilioServiceException):
        return exc.code or exc.status, str(exc.detail or exc.title)
    response = exc.args[1] if isinstance(exc, TwilioException) and len(exc.args) > 1 else None
    if response is not None and hasattr(response, "status_code"):
        try:
            body = json.loads(response.text)
            return int(body.get("code") or response.status_code), str(body.get("message") or "")
        except (ValueError, TypeError, AttributeError):
            return int(response.status_code), f"HTTP {response.status_code}"
    if isinstance(exc, requests.RequestException):
        return None, f"could not reach Twilio's API ({type(exc).__name__})"
    return None, f"{type(exc).__name__}: {exc}"


def twilio_error_text(exc: Exception) -> str:
    """A one-line description of a Twilio SDK or network error, without the SDK's ANSI colours."""
    code, message = twilio_error(exc)
    return f"Twilio error {code}: {message}" if code else message
