"""Status callbacks the way Twilio plays them: signed, form-encoded, delayed, sometimes not at all.

For each accepted message the player schedules a `sent` event and (unless the number never gets
a receipt) a final one. When an event falls due, the stored message moves to that status (so a
fetch by the reconciler sees it) and its callback is handed to the transport, dropped, or held
for `flush_callbacks()`, as the knobs say. Events wait in one heap served by one scheduler
thread; a small thread pool does the POSTs so a slow receiver cannot stall the schedule.
"""

from __future__ import annotations

import heapq
import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.request_validator import RequestValidator

from .knobs import Knobs
from .numbers import AUTO_REPLY_BODY, TO_AUTO_REPLY, outcome_for
from .store import API_VERSION, SimMessage, Store

# The scheduler's event for the auto-reply number's answer (not a status: nothing advances).
AUTO_REPLY = "auto-reply"


@dataclass(frozen=True)
class CallbackRequest:
    """One signed callback, ready to send: the URL Twilio would POST to, its params and headers."""

    url: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class CallbackRecord:
    """What happened to one callback: its request, the receiver's HTTP status or the error."""

    request: CallbackRequest
    outcome: str  # "delivered" (sent to the transport), "dropped" or "error"
    status_code: int | None = None
    error: str | None = None
    at: float = field(default_factory=time.time)

    @property
    def params(self) -> dict[str, str]:
        return self.request.params

    @property
    def status(self) -> str:
        return self.request.params.get("MessageStatus") or self.request.params.get("SmsStatus", "")


class Transport(Protocol):
    """Sends one callback and returns the receiver's HTTP status code."""

    def __call__(self, request: CallbackRequest) -> int: ...


class HttpTransport:
    """Real HTTP POSTs over a pooled session: the default, used by `make run`.

    With `via` (`http://host:port`), every callback goes to that address instead of its URL's
    host, with the URL's path and query, its signature, and its host in `Host`: what a tunnel
    or a proxy in front of the app does (ngrok, Heroku's router). So a harness can give the app
    a public https BASE_HOST_URL, as in production, while the callbacks stay on loopback."""

    def __init__(self, timeout: float = 10.0, pool_size: int = 16, via: str | None = None) -> None:
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.timeout = timeout
        self.via = urlsplit(via) if via else None

    def __call__(self, request: CallbackRequest) -> int:
        url, headers = request.url, request.headers
        if self.via is not None:
            parts = urlsplit(url)
            url = urlunsplit((self.via.scheme, self.via.netloc, parts.path, parts.query, ""))
            headers = {**headers, "Host": parts.netloc}
        response = self.session.post(
            url, data=request.params, headers=headers, timeout=self.timeout, allow_redirects=False
        )
        return response.status_code


def callback_params(message: SimMessage, status: str, error_code: int | None) -> dict[str, str]:
    """Twilio's status callback parameters for `message` reaching `status`."""
    params = {
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "AccountSid": message.account_sid,
        "From": message.from_ or "",
        "To": message.to,
        "ApiVersion": API_VERSION,
        "MessageStatus": status,
        "SmsStatus": status,
    }
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    if status in ("delivered", "undelivered", "failed"):
        params["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
    return params


def inbound_params(
    account_sid: str,
    from_: str,
    to: str,
    body: str,
    service_sid: str | None,
    sid: str | None = None,
    media: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """Twilio's parameters for an incoming SMS/MMS webhook (a recipient's reply, e.g. STOP);
    `media` lists (url, content type) per attachment and `sid` is the SM/MM SID it goes by."""
    sid = sid or ("MM" if media else "SM") + secrets.token_hex(16)
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": str(len(media)),
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": API_VERSION,
    }
    for n, (url, content_type) in enumerate(media):
        params[f"MediaUrl{n}"] = url
        params[f"MediaContentType{n}"] = content_type
    if service_sid:
        params["MessagingServiceSid"] = service_sid
    return params


@dataclass(order=True)
class _Event:
    due: float
    seq: int
    sid: str = field(compare=False)
    status: str = field(compare=False)
    error_code: int | None = field(compare=False)
    url: str | None = field(compare=False)
    copies: int = field(compare=False, default=1)


class CallbackPlayer:
    """Schedules each message's status events and delivers their signed callbacks."""

    def __init__(
        self,
        store: Store,
        knobs: Callable[[], Knobs],
        rng: Callable[[], random.Random],
        transport: Transport,
        workers: int = 8,
    ) -> None:
        self.store = store
        self.knobs = knobs
        self.rng = rng
        self.transport: Transport = transport
        self.validator = RequestValidator(store.auth_token)
        self._heap: list[_Event] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._held: list[CallbackRequest] = []
        self._records: list[CallbackRecord] = []
        self._in_flight = 0
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim-callback")
        self._thread = threading.Thread(target=self._run, name="sim-scheduler", daemon=True)
        self._thread.start()

    # -- scheduling -------------------------------------------------------------------------
    def schedule(self, message: SimMessage) -> None:
        """Plan `sent` and the final status for a just-accepted message."""
        knobs, rng = self.knobs(), self.rng()
        outcome = outcome_for(message.to)
        url = message.status_callback
        steps: list[tuple[str, int | None, float]] = [("sent", None, knobs.callback_sent_delay)]
        if outcome.final_status:
            final_delay = max(knobs.callback_final_delay, knobs.callback_sent_delay)
            steps.append((outcome.final_status, outcome.error_code, final_delay))
        validity = _validity_period(message.params)
        if validity is not None and knobs.queue_delay > validity:
            # Still queued when its validity period ran out: Twilio drops it, never sent.
            steps = [("failed", 30036, float(validity))]
        else:
            steps = [(status, code, delay + knobs.queue_delay) for status, code, delay in steps]
        start = time.monotonic()
        delays = [self._jittered(delay, knobs.callback_jitter, rng) for _, _, delay in steps]
        if len(delays) == 2:
            low, high = sorted(delays)
            delays = [high, low] if knobs.callback_reorder else [low, high]
        with self._cond:
            for (status, code, _), delay in zip(steps, delays, strict=True):
                heapq.heappush(
                    self._heap,
                    _Event(start + delay, next(self._seq), message.sid, status, code, url, 1 + knobs.callback_repeat),
                )
            if message.to == TO_AUTO_REPLY:  # its answer comes after the last status has
                due = start + max(delays) + knobs.auto_reply_delay
                heapq.heappush(self._heap, _Event(due, next(self._seq), message.sid, AUTO_REPLY, None, None))
            self._cond.notify()

    @staticmethod
    def _jittered(delay: float, jitter: float, rng: random.Random) -> float:
        return max(0.0, delay * (1 + rng.uniform(-jitter, jitter))) if delay and jitter else delay

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0].due > time.monotonic()):
                    timeout = self._heap[0].due - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                event = heapq.heappop(self._heap)
                self._in_flight += 1
            try:
                self._fire(event)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _fire(self, event: _Event) -> None:
        """The event falls due: move the stored status (never backwards), then send, drop or hold
        its callback, which goes out even when a reordered final status got there first."""
        if event.status == AUTO_REPLY:
            self._auto_reply(event.sid)
            return
        message = self.store.advance(event.sid, event.status, event.error_code)
        if message is None or not event.url:
            return
        request = self.signed(event.url, callback_params(message, event.status, event.error_code))
        knobs, rng = self.knobs(), self.rng()
        for _ in range(event.copies):
            if knobs.callback_drop_rate and rng.random() < knobs.callback_drop_rate:
                self.log(CallbackRecord(request, "dropped"))
            else:
                self._dispatch(request)

    def _dispatch(self, request: CallbackRequest) -> None:
        """Hold `request` for flush() (the hold_callbacks knob), else send it from the pool."""
        if self.knobs().hold_callbacks:
            with self._cond:
                self._held.append(request)
        else:
            with self._cond:
                self._in_flight += 1
            self._pool.submit(self._deliver, request)

    def _auto_reply(self, sid: str) -> None:
        """The auto-reply number texts back, to wherever Twilio would send an incoming text."""
        message = self.store.messages.get(sid)
        target, service_sid = self.store.inbound_target()
        if message is None or target is None:
            return
        params = inbound_params(
            self.store.account_sid, message.to, message.from_ or self.store.from_number, AUTO_REPLY_BODY, service_sid
        )
        self._dispatch(self.signed(target, params))

    def _deliver(self, request: CallbackRequest) -> None:
        try:
            self.log(self.send(request))
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def signed(self, url: str, params: dict[str, str]) -> CallbackRequest:
        """A request Twilio would make: `params` form-encoded, signed over `url` with the auth token."""
        return CallbackRequest(
            url,
            params,
            {
                "X-Twilio-Signature": self.validator.compute_signature(url, params),
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "TwilioProxy/1.1",
            },
        )

    def send(self, request: CallbackRequest) -> CallbackRecord:
        """Hand one callback to the transport now, in the calling thread."""
        try:
            return CallbackRecord(request, "delivered", status_code=self.transport(request))
        except Exception as exc:
            return CallbackRecord(request, "error", error=f"{type(exc).__name__}: {exc}")

    def log(self, record: CallbackRecord) -> None:
        with self._cond:
            self._records.append(record)
            self._cond.notify_all()

    # -- inspection and control -------------------------------------------------------------
    def records(self) -> list[CallbackRecord]:
        with self._cond:
            return list(self._records)

    def held(self) -> list[CallbackRequest]:
        with self._cond:
            return list(self._held)

    def settle(self, timeout: float = 10.0) -> None:
        """Fire every scheduled event now, ignoring its delay, and wait for sends in flight."""
        with self._cond:
            if self._heap:  # bring every event due now, keeping their order
                shift = max(event.due for event in self._heap) - time.monotonic()
                for event in self._heap:
                    event.due -= max(shift, 0.0)
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: not self._heap and not self._in_flight, timeout):
                raise TimeoutError(f"callbacks still pending after {timeout}s")

    def flush(self, timeout: float = 10.0) -> list[CallbackRecord]:
        """Settle, then deliver every held callback in order in this thread; their records."""
        self.settle(timeout)
        with self._cond:
            held, self._held = self._held, []
        records = [self.send(request) for request in held]
        for record in records:
            self.log(record)
        return records

    def wait_for(self, count: int, timeout: float = 10.0) -> list[CallbackRecord]:
        """Block until at least `count` callbacks have been recorded; all records so far."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._records) >= count, timeout):
                raise TimeoutError(f"{len(self._records)} of {count} callbacks after {timeout}s")
            return list(self._records)

    def reset(self, timeout: float = 10.0) -> None:
        """Cancel everything scheduled or held, wait out sends in flight, forget the records."""
        with self._cond:
            self._heap.clear()
            self._cond.wait_for(lambda: not self._in_flight, timeout)
            self._held.clear()  # after the wait: an event firing during it may have held one
            self._records.clear()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _validity_period(params: dict[str, str]) -> int | None:
    """The create's ValidityPeriod in seconds, if it sent a usable one."""
    raw = (params.get("ValidityPeriod") or "").strip()
    return int(raw) if raw.isdigit() else None
