"""The simulator's in-memory Twilio account: messages, phone numbers, Messaging Services.

Records keep Twilio's field names in their JSON rendering (checked against Twilio's OpenAPI
spec in shared/twilio-oai) so the real SDK parses them unchanged. One lock guards the store;
every operation under it is O(1) or a scan of one recipient's messages, so the server stays
cheap per request.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any, overload

from .numbers import ERROR_MESSAGES

API_VERSION = "2010-04-01"
# Later statuses rank higher; a stored message never moves backwards (callbacks may be reordered).
STATUS_RANK = {"accepted": 0, "queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@overload
def rfc2822(moment: datetime) -> str: ...
@overload
def rfc2822(moment: datetime | None) -> str | None: ...
def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's JSON date format, e.g. 'Thu, 26 Nov 2026 23:36:54 +0000'."""
    return format_datetime(moment).replace("-0000", "+0000") if moment else None


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def segments(body: str) -> int:
    """A cheap segment count (GSM-7 160/153, else UCS-2 70/67) for `num_segments`."""
    gsm = all(ord(ch) < 128 for ch in body)
    single, multi = (160, 153) if gsm else (70, 67)
    if len(body) <= single:
        return 1
    return -(-len(body) // multi)


@dataclass
class SimMessage:
    """One message the simulator accepted, with the raw create params it was sent."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    status_callback: str | None
    messaging_service_sid: str | None
    params: dict[str, str]
    status: str
    date_created: datetime
    date_sent: datetime | None
    date_updated: datetime
    error_code: int | None = None

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def to_json(self) -> dict[str, Any]:
        base = self.uri[: -len(".json")]
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": ERROR_MESSAGES.get(self.error_code) if self.error_code else None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(segments(self.body)),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
            "to": self.to,
            "uri": self.uri,
        }


@dataclass
class SimService:
    """A Messaging Service: the only place Twilio keeps an SMS status callback for a sender pool."""

    sid: str
    account_sid: str
    friendly_name: str
    status_callback: str | None = None
    inbound_request_url: str | None = None
    inbound_method: str = "POST"
    date_created: datetime = field(default_factory=now)
    date_updated: datetime = field(default_factory=now)

    def to_json(self, base_url: str, smart_encoding: bool) -> dict[str, Any]:
        """The service as Twilio shows it; `smart_encoding` is the simulator's knob of that name,
        which decides whether this service's sends keep a smart-encoded body."""
        url = f"{base_url}/v1/Services/{self.sid}"
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "friendly_name": self.friendly_name,
            "date_created": self.date_created.isoformat().replace("+00:00", "Z"),
            "date_updated": self.date_updated.isoformat().replace("+00:00", "Z"),
            "inbound_request_url": self.inbound_request_url,
            "inbound_method": self.inbound_method,
            "fallback_url": None,
            "fallback_method": "POST",
            "status_callback": self.status_callback,
            "sticky_sender": True,
            "mms_converter": True,
            "smart_encoding": smart_encoding,
            "scan_message_content": "inherit",
            "fallback_to_long_code": True,
            "area_code_geomatch": True,
            "synchronous_validation": True,
            "validity_period": 14400,
            "url": url,
            "usecase": "notifications",
            "us_app_to_person_registered": False,
            "use_inbound_webhook_on_number": False,
            "links": {
                "phone_numbers": f"{url}/PhoneNumbers",
                "short_codes": f"{url}/ShortCodes",
                "alpha_senders": f"{url}/AlphaSenders",
            },
        }


@dataclass
class SimNumber:
    """An incoming phone number the account owns (the From number), with its SMS webhook."""

    sid: str
    account_sid: str
    phone_number: str
    sms_url: str = ""
    sms_method: str = "POST"
    date_created: datetime = field(default_factory=now)
    date_updated: datetime = field(default_factory=now)

    def to_json(self) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "address_sid": None,
            "address_requirements": "none",
            "api_version": API_VERSION,
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "friendly_name": self.phone_number,
            "identity_sid": None,
            "phone_number": self.phone_number,
            "origin": "twilio",
            "sid": self.sid,
            "sms_application_sid": "",
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": self.sms_method,
            "sms_url": self.sms_url,
            "status_callback": "",
            "status_callback_method": "POST",
            "trunk_sid": None,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{self.sid}.json",
            "voice_receive_mode": "voice",
            "voice_application_sid": None,
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": None,
            "voice_method": "POST",
            "voice_url": None,
            "emergency_status": "Inactive",
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "bundle_sid": None,
            "status": "in-use",
            "type": "local",
        }


def _day_or_moment(raw: str) -> tuple[datetime | date, bool]:
    """Parse a DateSent filter value: 'YYYY-MM-DD' (a whole day) or an ISO 8601 moment."""
    text = raw.strip().lstrip("<>=")
    if len(text) == 10:
        return date.fromisoformat(text), True
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, False


def matches_date_sent(sent: datetime | None, op: str, raw: str) -> bool:
    """Twilio's DateSent filters: '=' same day (or moment), '<' on or before, '>' on or after."""
    if sent is None:
        return False
    value, whole_day = _day_or_moment(raw)
    left: datetime | date = sent.date() if whole_day else sent
    if op == "<":
        return left <= value
    if op == ">":
        return left >= value
    return left == value


# A 1x1 transparent PNG: an image attachment a browser can show.
PLACEHOLDER_MEDIA: dict[str, bytes] = {
    "image/png": bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    ),
}


class Store:
    """Thread-safe in-memory state of one simulated account."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str, service_sid: str | None = None) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.default_service_sid = service_sid or "MG" + account_sid[2:]
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget every message and restore the default number and Messaging Service."""
        with self.lock:
            self.messages: dict[str, SimMessage] = {}
            self.by_to: dict[str, list[SimMessage]] = {}
            self.numbers = {
                n.sid: n for n in [SimNumber("PN" + self.account_sid[2:], self.account_sid, self.from_number)]
            }
            default_service = SimService(self.default_service_sid, self.account_sid, "smsdash simulator")
            self.services = {default_service.sid: default_service}
            self.media: dict[str, tuple[str, bytes]] = {}

    def inbound_target(self) -> tuple[str | None, str | None]:
        """Where Twilio POSTs a text someone sends us: (the Messaging Service's inbound URL, its
        SID, which the webhook then names), else (the number's SmsUrl, None); (None, None) when
        neither is set and Twilio would drop the text."""
        with self.lock:
            service = self.services[self.default_service_sid]
            if service.inbound_request_url:
                return service.inbound_request_url, service.sid
            number = next(iter(self.numbers.values()))
            return number.sms_url or None, None

    def add_media(self, message_sid: str, content_type: str) -> str:
        """Keep an attachment of an incoming MMS; its URL on Twilio's API host, as Twilio sends it
        (fetching it needs the account's credentials, see api.py)."""
        media_sid = new_sid("ME")
        body = PLACEHOLDER_MEDIA.get(content_type, b"simulated attachment\n")
        with self.lock:
            self.media[media_sid] = (content_type, body)
        return f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{media_sid}"

    def add_message(self, message: SimMessage) -> None:
        with self.lock:
            self.messages[message.sid] = message
            self.by_to.setdefault(message.to, []).append(message)

    def advance(self, sid: str, status: str, error_code: int | None) -> SimMessage | None:
        """Move a message to `status` unless it is already at or past it; the message (None if unknown)."""
        with self.lock:
            message = self.messages.get(sid)
            if message is None or STATUS_RANK[status] <= STATUS_RANK[message.status]:
                return message
            message.status = status
            message.error_code = error_code
            message.date_updated = now()
            return message

    def list_messages(self, to: str | None, from_: str | None, date_filters: list[tuple[str, str]]) -> list[SimMessage]:
        """Messages matching the filters, newest first, as Twilio lists them."""
        with self.lock:
            pool = list(self.by_to.get(to, [])) if to else list(self.messages.values())
        selected = [
            m
            for m in pool
            if (from_ is None or m.from_ == from_)
            and all(matches_date_sent(m.date_sent, op, raw) for op, raw in date_filters)
        ]
        selected.reverse()
        return selected
