"""Fixtures for the status webhook: deliveries to call back about, and signed Twilio requests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from smsdash.extensions import db
from smsdash.models import Delivery, Event, Message

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_BASE = "https://smsdash.example.com"


@pytest.fixture
def make_delivery(app: Flask) -> Callable[..., int]:
    """Create a message with one delivery (status queued unless given); return the delivery id."""

    def make(to: str = "+15005550006", status: str = "queued", sid: str | None = None) -> int:
        with app.app_context():
            message = Message(body="hello", recipient_count=1)
            db.session.add(message)
            db.session.flush()
            delivery = Delivery(
                message_id=message.id, to_number=to, status=status, external_message_id=sid, body=message.body
            )
            db.session.add(delivery)
            db.session.commit()
            return delivery.id

    return make


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for a POST of `params` to `url`."""
    return RequestValidator(token).compute_signature(url, params)


def callback_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    """The form params of a Twilio status callback, as Twilio sends them."""
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15005550001",
        "To": "+15005550006",
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def inbound_params(body: str, sid: str = "SM" + "d" * 32, **extra: str) -> dict[str, str]:
    """The form params of a Twilio inbound SMS webhook (a reply from +15005550006 to +15005550001)."""
    params = {
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15005550006",
        "To": "+15005550001",
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


@pytest.fixture
def post_signed(app: Flask, client: FlaskClient) -> Callable[..., TestResponse]:
    """POST `params` to `path` (with `query`) signed for the public URL Twilio would have called."""
    app.config["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN

    def post(
        path: str,
        params: dict[str, str],
        query: dict[str, Any] | None = None,
        signed_url: str | None = None,
        headers: dict[str, str] | None = None,
        via: FlaskClient | None = None,
    ) -> TestResponse:
        qs = f"?{urlencode(query)}" if query else ""
        url = signed_url or f"{PUBLIC_BASE}{path}{qs}"
        all_headers = {"X-Twilio-Signature": sign(url, params), **(headers or {})}
        return (via or client).post(f"{path}{qs}", data=params, headers=all_headers)

    return post


def post_all_at_once(app: Flask, sid: str, delivery_id: int, statuses: list[str]) -> list[int]:
    """POST a signed status callback for each of `statuses` from its own thread, released together
    by a barrier so they race in the webhook; return the HTTP answers. A thread's exception is
    raised here, not lost in the thread."""
    path = f"/webhooks/twilio/status?d={delivery_id}"
    answers: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(statuses))

    def deliver(status: str) -> None:
        try:
            params = callback_params(sid, status)
            with app.app_context():
                client = app.test_client()
                start.wait()
                answers.append(
                    client.post(
                        path, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE + path, params)}
                    ).status_code
                )
                db.session.remove()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(s,)) for s in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return answers


def events_of(app: Flask, delivery_id: int) -> list[Event]:
    with app.app_context():
        events = db.session.scalars(select(Event).where(Event.delivery_id == delivery_id).order_by(Event.id)).all()
        for event in events:
            db.session.expunge(event)
        return list(events)


def delivery_row(app: Flask, delivery_id: int) -> Delivery:
    with app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        assert delivery is not None
        db.session.expunge(delivery)
        return delivery
