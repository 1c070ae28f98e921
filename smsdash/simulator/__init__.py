"""A built-in Twilio: the REST API subset smsdash uses, signed status callbacks, and knobs.

`make run` starts it when no TWILIO_ credentials are set (`python -m smsdash.simulator`), and
the test suite runs one per session (tests/fixtures_twilio.py). The real twilio SDK reaches it
through TWILIO_API_BASE_URL, so the app's Twilio code runs unchanged. Numbers: numbers.py;
knobs: knobs.py; README "Twilio simulator" documents both.
"""

from .callbacks import CallbackRecord, CallbackRequest, HttpTransport, Transport
from .knobs import KNOB_NAMES, KnobError, Knobs
from .numbers import (
    AUTO_REPLY_BODY,
    CREATE_ERRORS_FROM,
    CREATE_ERRORS_TO,
    OUTCOMES,
    TO_AUTO_REPLY,
    TO_BLOCKED,
    TO_CARRIER_FILTERED,
    TO_FAILED,
    TO_INVALID,
    TO_LANDLINE,
    TO_NO_INTERNATIONAL,
    TO_NO_RECEIPT,
    TO_NOT_MOBILE,
    TO_UNKNOWN_HANDSET,
    TO_UNREACHABLE,
    TO_UNROUTABLE,
    VALID_FROM,
    outcome_for,
)
from .server import Simulator
from .store import SimMessage

__all__ = [
    "AUTO_REPLY_BODY",
    "CREATE_ERRORS_FROM",
    "CREATE_ERRORS_TO",
    "KNOB_NAMES",
    "OUTCOMES",
    "TO_AUTO_REPLY",
    "TO_BLOCKED",
    "TO_CARRIER_FILTERED",
    "TO_FAILED",
    "TO_INVALID",
    "TO_LANDLINE",
    "TO_NO_INTERNATIONAL",
    "TO_NO_RECEIPT",
    "TO_NOT_MOBILE",
    "TO_UNKNOWN_HANDSET",
    "TO_UNREACHABLE",
    "TO_UNROUTABLE",
    "VALID_FROM",
    "CallbackRecord",
    "CallbackRequest",
    "HttpTransport",
    "KnobError",
    "Knobs",
    "SimMessage",
    "Simulator",
    "Transport",
    "outcome_for",
]
