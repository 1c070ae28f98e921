"""The simulator's HTTP server and its Python face (`Simulator`), used by `make run` and tests.

A stdlib ThreadingHTTPServer speaking HTTP/1.1 keep-alive: the SDK's pooled connections each
get one thread, so latency knobs cost a sleeping thread, not a core. Per request the work is a
parse, a dict lookup and a JSON dump. `/_sim/...` is the control surface (knobs, reset,
inspection) for bench scripts and `make run` users; it needs no auth and the server binds to
loopback.
"""

from __future__ import annotations

import base64
import hmac
import json
import random
import secrets
import socket
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .api import ApiError, ApiRequest, Reply, dispatch, is_create
from .callbacks import (
    CallbackPlayer,
    CallbackRecord,
    CallbackRequest,
    HttpTransport,
    Transport,
    inbound_params,
)
from .knobs import KnobError, Knobs
from .numbers import VALID_FROM
from .store import SimMessage, Store, now, rfc2822

MESSAGING_BASE = "https://messaging.twilio.com"
CONTROL_PREFIX = "/_sim/"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True
    simulator: Simulator


class Simulator:
    """A running fake Twilio account. Construct, `start()`, point TWILIO_API_BASE_URL at `base_url`."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        from_number: str = VALID_FROM,
        messaging_service_sid: str | None = None,
        knobs: Knobs | Mapping[str, Any] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.host, self.port = host, port
        self.messaging_base = MESSAGING_BASE
        self.started_at = rfc2822(now())
        self._knobs = knobs if isinstance(knobs, Knobs) else Knobs().updated(knobs or {})
        self._rng = random.Random(self._knobs.seed)
        self._rng_lock = threading.Lock()
        self._release = threading.Event()
        self.default_transport: Transport = transport or HttpTransport()
        self.store = Store(account_sid, auth_token, from_number, messaging_service_sid)
        self.player = CallbackPlayer(self.store, lambda: self._knobs, lambda: self._rng, self.default_transport)
        self._expected_auth = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Simulator:
        server = _Server((self.host, self.port), _Handler)
        server.simulator = self
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="sim-http", daemon=True
        )
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Release hung requests, stop the callback player, close the listening socket."""
        self._release.set()
        self.player.stop()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- knobs and state -----------------------------------------------------------------------
    @property
    def knobs(self) -> Knobs:
        return self._knobs

    def set_knobs(self, **changes: Any) -> Knobs:
        """Change knobs by name (see Knobs); unknown names or bad values raise KnobError."""
        self._knobs = self._knobs.updated(changes)
        if "seed" in changes:
            with self._rng_lock:
                self._rng = random.Random(self._knobs.seed)
        return self._knobs

    def reset(self, knobs: Knobs | Mapping[str, Any] | None = None) -> None:
        """Forget messages and callbacks, release hung requests, restore knobs and transport."""
        self._release.set()
        self._release = threading.Event()
        self.player.reset()
        self.player.transport = self.default_transport
        self.store.reset()
        self._knobs = knobs if isinstance(knobs, Knobs) else Knobs().updated(knobs or {})
        self._rng = random.Random(self._knobs.seed)

    def client_config(self) -> dict[str, str]:
        """The TWILIO_* settings that point an app (or `build_client`) at this simulator."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_FROM_NUMBER": self.from_number,
            "TWILIO_API_BASE_URL": self.base_url,
        }

    def set_transport(self, transport: Transport | None) -> None:
        """Where callbacks go from now on (None: back to the default transport)."""
        self.player.transport = transport or self.default_transport

    def draw(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    @property
    def messages(self) -> list[SimMessage]:
        """Every accepted message, oldest first."""
        with self.store.lock:
            return list(self.store.messages.values())

    def message(self, sid: str) -> SimMessage:
        return self.store.messages[sid]

    @property
    def messaging_service_sid(self) -> str:
        """The SID of the Messaging Service every simulated account starts with."""
        return self.store.default_service_sid

    @property
    def callbacks(self) -> list[CallbackRecord]:
        """Every callback handed to the transport, dropped or failed so far, in order."""
        return self.player.records()

    @property
    def held_callbacks(self) -> list[CallbackRequest]:
        return self.player.held()

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> list[CallbackRecord]:
        return self.player.wait_for(count, timeout)

    def settle(self, timeout: float = 10.0) -> None:
        """Apply every scheduled status change now and wait for callbacks in flight."""
        self.player.settle(timeout)

    def flush_callbacks(self, timeout: float = 10.0) -> list[CallbackRecord]:
        """Settle, then deliver held callbacks in this thread, in order; their records."""
        return self.player.flush(timeout)

    def inbound(
        self, from_: str, body: str, url: str | None = None, media: Sequence[str] = ()
    ) -> CallbackRecord | None:
        """A text someone sends us (a reply, STOP, an MMS with attachments of the `media` content
        types), POSTed now, in this thread, the way Twilio delivers it: to `url`, else the
        Messaging Service's inbound URL (naming the service), else the number's SmsUrl. None when
        no URL is configured (Twilio would drop it too)."""
        target, service_sid = (url, None) if url else self.store.inbound_target()
        if not target:
            return None
        sid = ("MM" if media else "SM") + secrets.token_hex(16)
        attachments = [(self.store.add_media(sid, content_type), content_type) for content_type in media]
        params = inbound_params(self.account_sid, from_, self.from_number, body, service_sid, sid, attachments)
        record = self.player.send(self.player.signed(target, params))
        self.player.log(record)
        return record

    def control(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """The /_sim/ control endpoints: knobs (GET/POST), reset, messages, callbacks, settle."""
        name = path[len(CONTROL_PREFIX) :].strip("/")
        if name == "knobs" and method == "GET":
            return 200, self.knobs.as_dict()
        if name == "knobs" and method == "POST":
            try:
                return 200, self.set_knobs(**body).as_dict()
            except KnobError as exc:
                return 400, {"error": str(exc)}
        if name == "reset" and method == "POST":
            self.reset(body or None)
            return 200, self.knobs.as_dict()
        if name == "messages" and method == "GET":
            return 200, [m.to_json() for m in self.messages]
        if name == "callbacks" and method == "GET":
            return 200, [
                {
                    "url": r.request.url,
                    "params": r.params,
                    "outcome": r.outcome,
                    "status_code": r.status_code,
                    "error": r.error,
                }
                for r in self.callbacks
            ]
        if name == "inbound" and method == "POST":
            media = [str(m) for m in body.get("media") or []]
            record = self.inbound(str(body.get("from", "")), str(body.get("body", "")), body.get("url"), media)
            if record is None:
                return 409, {"error": "no inbound URL: set the Messaging Service's or the number's"}
            return 200, {"url": record.request.url, "status_code": record.status_code, "error": record.error}
        if name == "flush" and method == "POST":
            return 200, {"delivered": len(self.flush_callbacks())}
        return 404, {"error": f"no control endpoint {method} {path}"}

    def authorized(self, header: str | None) -> bool:
        """Basic auth with this account's SID and auth token, compared in constant time."""
        return header is not None and hmac.compare_digest(header.encode(), self._expected_auth.encode())

    @property
    def hang_release(self) -> threading.Event:
        return self._release


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK, adding ~40 ms to every keep-alive request on top of the latency knob.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a bench run makes thousands of requests."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        sim = self.server.simulator
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if parts.path.startswith(CONTROL_PREFIX):
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._write(400, {"error": "body must be JSON"})
                return
            self._write(*sim.control(self.command, parts.path, body))
            return
        knobs = sim.knobs
        if knobs.latency and sim.hang_release.wait(knobs.latency):
            self._drop_connection()  # reset() during the wait: this request belongs to a past test
            return
        request = ApiRequest(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()},
        )
        try:
            reply = self._answer(sim, knobs, request)
        except ApiError as exc:
            reply = Reply(exc.http_status, exc.body())
        if reply.after_accept and knobs.timeout_rate and sim.draw() < knobs.timeout_rate:
            if knobs.timeout_mode == "hang":
                sim.hang_release.wait(knobs.hang_seconds)
            self._drop_connection()
            return
        if reply.media is not None:
            self._write_bytes(*reply.media)
            return
        self._write(reply.status, reply.body, _retry_after(knobs) if reply.status == 429 else {})

    def _answer(self, sim: Simulator, knobs: Knobs, request: ApiRequest) -> Reply:
        if not sim.authorized(self.headers.get("Authorization")):
            raise ApiError(401, 20003)
        if knobs.error_scope == "all" or is_create(request):
            draw = sim.draw() if knobs.error_429_rate or knobs.error_500_rate else 1.0
            if draw < knobs.error_429_rate:
                raise ApiError(429, 20429)
            if draw < knobs.error_429_rate + knobs.error_500_rate:
                raise ApiError(500, 20500, "An internal server error has occurred")
        return dispatch(sim, request)

    def _drop_connection(self) -> None:
        """Close without answering: the client sees a read timeout or a reset connection."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write_bytes(self, content_type: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _write(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
        self.end_headers()
        self.wfile.write(data)


def _retry_after(knobs: Knobs) -> dict[str, str]:
    """The Retry-After header of a 429, as the `retry_after` knob asks (delta-seconds; a
    fraction is allowed so tests need not wait whole seconds)."""
    return {"Retry-After": f"{knobs.retry_after:g}"} if knobs.retry_after else {}
