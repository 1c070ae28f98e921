"""Twilio's REST API, the part smsdash uses: routing, auth, validation and JSON shapes.

Both API hosts the SDK talks to (api.twilio.com for API 2010, messaging.twilio.com for
Messaging v1) are rewritten to this one server, so requests are routed on the path alone.
Handlers return `(http_status, body)`; `ApiError` carries Twilio's error body
`{code, message, more_info, status}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from smsdash.sms.body import MAX_BODY_CHARS
from smsdash.sms.smart_encoding import smart_encode

from .callbacks import CallbackPlayer
from .knobs import Knobs
from .numbers import CREATE_ERRORS_FROM, CREATE_ERRORS_TO, ERROR_MESSAGES
from .store import API_VERSION, SimMessage, Store, new_sid, now


class Simulator(Protocol):
    """What the handlers read of the running simulator (server.Simulator provides it; typed
    here so that this module does not import the server that imports it)."""

    account_sid: str
    auth_token: str
    from_number: str
    messaging_base: str
    started_at: str
    store: Store
    player: CallbackPlayer

    @property
    def knobs(self) -> Knobs: ...


E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ACCOUNT = r"/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})"


class ApiError(Exception):
    """A Twilio error response."""

    def __init__(self, http_status: int, code: int, message: str | None = None) -> None:
        super().__init__(message or ERROR_MESSAGES.get(code, "Error"))
        self.http_status = http_status
        self.code = code
        self.message = message or ERROR_MESSAGES.get(code, "Error")

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.http_status,
        }


@dataclass
class ApiRequest:
    """A parsed API request: method, path, query (multi-valued) and form params."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, str]

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Reply:
    """What the server writes: a status and a JSON body, or a dropped/hung connection."""

    status: int
    body: dict[str, Any] | None
    after_accept: bool = False  # a create that was recorded: the timeout knob may hold it
    media: tuple[str, bytes] | None = None  # (content type, bytes): written as they are, not JSON


Handler = Callable[[Simulator, ApiRequest, dict[str, str]], Reply]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^{pattern}$"), func))
        return func

    return register


def dispatch(sim: Simulator, request: ApiRequest) -> Reply:
    """Find the handler for the request and run it; 404 (20404) or 405 when none fits."""
    path_matched = False
    for method, pattern, handler in ROUTES:
        match = pattern.match(request.path)
        if match is None:
            continue
        path_matched = True
        if method == request.method:
            account = match.groupdict().get("account")
            if account is not None and account != sim.account_sid:
                raise ApiError(404, 20404)
            return handler(sim, request, match.groupdict())
    if path_matched:
        raise ApiError(405, 20004, "Method not allowed")
    raise ApiError(404, 20404)


def is_create(request: ApiRequest) -> bool:
    return request.method == "POST" and request.path.endswith("/Messages.json")


# -- API 2010: account, caller ids, numbers --------------------------------------------------
@route("GET", ACCOUNT + r"\.json")
def fetch_account(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    uri = f"/{API_VERSION}/Accounts/{sim.account_sid}"
    created = sim.started_at
    return Reply(
        200,
        {
            "auth_token": sim.auth_token,
            "date_created": created,
            "date_updated": created,
            "friendly_name": "smsdash simulator",
            "owner_account_sid": sim.account_sid,
            "sid": sim.account_sid,
            "status": "active",
            "type": "Trial" if sim.knobs.trial else "Full",
            "uri": uri + ".json",
            "subresource_uris": {
                "messages": uri + "/Messages.json",
                "incoming_phone_numbers": uri + "/IncomingPhoneNumbers.json",
                "outgoing_caller_ids": uri + "/OutgoingCallerIds.json",
            },
        },
    )


@route("GET", ACCOUNT + r"/OutgoingCallerIds\.json")
def list_caller_ids(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    wanted = request.arg("PhoneNumber")
    records = []
    for index, number in enumerate(sim.knobs.verified_numbers):
        if wanted and number != wanted:
            continue
        sid = "PN" + f"{index:032x}"
        records.append(
            {
                "sid": sid,
                "account_sid": sim.account_sid,
                "phone_number": number,
                "friendly_name": number,
                "date_created": sim.started_at,
                "date_updated": sim.started_at,
                "uri": f"/{API_VERSION}/Accounts/{sim.account_sid}/OutgoingCallerIds/{sid}.json",
            }
        )
    return page_reply(request, "outgoing_caller_ids", records)


@route("GET", ACCOUNT + r"/IncomingPhoneNumbers\.json")
def list_numbers(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    wanted = request.arg("PhoneNumber")
    with sim.store.lock:
        records = [n.to_json() for n in sim.store.numbers.values() if not wanted or n.phone_number == wanted]
    return page_reply(request, "incoming_phone_numbers", records)


@route("GET", ACCOUNT + r"/IncomingPhoneNumbers/(?P<sid>PN[0-9a-fA-F]{32})\.json")
def fetch_number(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    number = sim.store.numbers.get(args["sid"])
    if number is None:
        raise ApiError(404, 20404)
    return Reply(200, number.to_json())


@route("POST", ACCOUNT + r"/IncomingPhoneNumbers/(?P<sid>PN[0-9a-fA-F]{32})\.json")
def update_number(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    with sim.store.lock:
        number = sim.store.numbers.get(args["sid"])
        if number is None:
            raise ApiError(404, 20404)
        if "SmsUrl" in request.form:
            number.sms_url = _url_or_empty(request.form["SmsUrl"], "SmsUrl")
        if "SmsMethod" in request.form:
            number.sms_method = request.form["SmsMethod"].upper()
        number.date_updated = now()
        return Reply(200, number.to_json())


def _url_or_empty(value: str, name: str) -> str:
    """A webhook URL setting: empty clears it; anything else must be an http(s) URL."""
    if value and not _is_url(value):
        raise ApiError(400, 21609 if name == "StatusCallback" else 21502, f"Invalid {name}: {value}")
    return value


def _is_url(value: str) -> bool:
    """Twilio's rule for callback URLs: http(s), a host name, and no underscore in it."""
    parts = urlsplit(value)
    host = parts.hostname or ""
    return parts.scheme in ("http", "https") and bool(host) and "_" not in host


# -- API 2010: messages ----------------------------------------------------------------------
@route("POST", ACCOUNT + r"/Messages\.json")
def create_message(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    form = request.form
    to = form.get("To", "").strip()
    from_ = form.get("From", "").strip() or None
    service_sid = form.get("MessagingServiceSid", "").strip() or None
    body = form.get("Body", "")
    callback = form.get("StatusCallback", "").strip() or None
    if not to:
        raise ApiError(400, 21604)
    if not from_ and not service_sid:
        raise ApiError(400, 21603)
    if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
        raise ApiError(400, 21602)
    if len(body) > MAX_BODY_CHARS:
        raise ApiError(400, 21617)
    if callback and not _is_url(callback):
        raise ApiError(400, 21609, f"The StatusCallback URL {callback} is not a valid URL.")
    if from_ in CREATE_ERRORS_FROM:
        raise ApiError(400, CREATE_ERRORS_FROM[from_])
    if service_sid:
        service = sim.store.services.get(service_sid)
        if service is None:
            raise ApiError(400, 21701, f"The Messaging Service Sid {service_sid} is invalid.")
        callback = callback or service.status_callback or None
        from_ = from_ or sim.from_number
    if to in CREATE_ERRORS_TO:
        raise ApiError(400, CREATE_ERRORS_TO[to])
    if not E164.match(to):
        raise ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if sim.knobs.trial and to not in sim.knobs.verified_numbers:
        raise ApiError(400, 21608)
    if service_sid and sim.knobs.smart_encoding:
        body = smart_encode(body)  # what Twilio stores, lists and sends, not what we were given
    moment = now()
    message = SimMessage(
        sid=new_sid("SM"),
        account_sid=sim.account_sid,
        to=to,
        from_=from_,
        body=body,
        status_callback=callback,
        messaging_service_sid=service_sid,
        params=dict(form),
        status="accepted" if service_sid else "queued",
        date_created=moment,
        date_sent=moment,
        date_updated=moment,
    )
    sim.store.add_message(message)
    sim.player.schedule(message)
    return Reply(201, message.to_json(), after_accept=True)


@route("GET", ACCOUNT + r"/Messages/(?P<sid>(?:SM|MM)[0-9a-fA-F]{32})\.json")
def fetch_message(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    message = sim.store.messages.get(args["sid"])
    if message is None:
        raise ApiError(404, 20404)
    with sim.store.lock:
        return Reply(200, message.to_json())


@route("GET", ACCOUNT + r"/Messages/(?P<sid>(?:SM|MM)[0-9a-fA-F]{32})/Media/(?P<media>ME[0-9a-fA-F]{32})")
def fetch_media(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    """An incoming MMS's attachment, behind the account's credentials like any API request."""
    found = sim.store.media.get(args["media"])
    if found is None:
        raise ApiError(404, 20404)
    return Reply(200, None, media=found)


@route("GET", ACCOUNT + r"/Messages\.json")
def list_messages(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    filters = [(op, value) for op in ("", "<", ">") for value in request.query.get("DateSent" + op, [])]
    selected = sim.store.list_messages(request.arg("To"), request.arg("From"), filters)
    with sim.store.lock:
        records = [m.to_json() for m in selected]
    return page_reply(request, "messages", records)


def page_reply(request: ApiRequest, key: str, records: list[dict[str, Any]]) -> Reply:
    """One page of `records` in API 2010's list shape (page, page_size, *_page_uri, start, end)."""
    try:
        size = min(max(int(request.arg("PageSize") or 50), 1), 1000)
        page = max(int(request.arg("Page") or 0), 0)
    except ValueError as exc:
        raise ApiError(400, 20001, "Invalid paging parameter") from exc
    start = page * size
    chunk = records[start : start + size]
    filters = {k: v[-1] for k, v in request.query.items() if k not in ("Page", "PageSize", "PageToken")}

    def uri(number: int) -> str:
        query = urlencode(
            {**filters, "PageSize": size, "Page": number, **({"PageToken": f"PA{number * size}"} if number else {})}
        )
        return f"{request.path}?{query}"

    has_next = start + size < len(records)
    return Reply(
        200,
        {
            key: chunk,
            "end": start + len(chunk) - 1 if chunk else start,
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if has_next else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(page - 1) if page else None,
            "start": start,
            "uri": f"{request.path}?{urlencode({**filters, 'PageSize': size, 'Page': page})}",
        },
    )


# -- Messaging v1: services ------------------------------------------------------------------
@route("GET", r"/v1/Services")
def list_services(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    size = min(max(int(request.arg("PageSize") or 50), 1), 1000)
    with sim.store.lock:
        records = [s.to_json(sim.messaging_base, sim.knobs.smart_encoding) for s in sim.store.services.values()][:size]
    url = f"{sim.messaging_base}/v1/Services?PageSize={size}&Page=0"
    return Reply(
        200,
        {
            "services": records,
            "meta": {
                "page": 0,
                "page_size": size,
                "first_page_url": url,
                "previous_page_url": None,
                "url": url,
                "next_page_url": None,
                "key": "services",
            },
        },
    )


@route("GET", r"/v1/Services/(?P<sid>MG[0-9a-fA-F]{32})")
def fetch_service(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    service = sim.store.services.get(args["sid"])
    if service is None:
        raise ApiError(404, 20404)
    return Reply(200, service.to_json(sim.messaging_base, sim.knobs.smart_encoding))


@route("POST", r"/v1/Services/(?P<sid>MG[0-9a-fA-F]{32})")
def update_service(sim: Simulator, request: ApiRequest, args: dict[str, str]) -> Reply:
    with sim.store.lock:
        service = sim.store.services.get(args["sid"])
        if service is None:
            raise ApiError(404, 20404)
        form = request.form
        if "StatusCallback" in form:
            service.status_callback = _url_or_empty(form["StatusCallback"], "StatusCallback") or None
        if "InboundRequestUrl" in form:
            service.inbound_request_url = _url_or_empty(form["InboundRequestUrl"], "InboundRequestUrl") or None
        if "InboundMethod" in form:
            service.inbound_method = form["InboundMethod"].upper()
        if "FriendlyName" in form:
            service.friendly_name = form["FriendlyName"]
        service.date_updated = now()
        return Reply(200, service.to_json(sim.messaging_base, sim.knobs.smart_encoding))
