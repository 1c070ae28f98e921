"""Every inbound text is kept: once per MessageSid, matched to its contact and the delivery it
answers, whatever it holds (long, emoji, media only, a sender that is not a phone number)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from smsdash.extensions import db
from smsdash.models import Contact, InboundMessage
from tests.fixtures_webhooks import PUBLIC_BASE, inbound_params, sign

INBOUND = "/webhooks/twilio/inbound"
RECIPIENT = "+15005550006"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

Post = Callable[..., TestResponse]


def stored(app: Flask) -> list[InboundMessage]:
    with app.app_context():
        rows = list(db.session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def test_a_reply_is_stored_once_even_when_twilio_repeats_the_webhook(app: Flask, post_signed: Post) -> None:
    params = inbound_params("running 20 min late", MessagingServiceSid="MG" + "e" * 32)
    for _ in range(3):
        response = post_signed(INBOUND, params)
        assert response.status_code == 200 and response.get_data(as_text=True) == EMPTY_TWIML
    [reply] = stored(app)
    assert (reply.message_sid, reply.from_number, reply.to_number, reply.body) == (
        params["MessageSid"],
        RECIPIENT,
        "+15005550001",
        "running 20 min late",
    )
    assert reply.messaging_service_sid == "MG" + "e" * 32 and reply.num_media == 0 and reply.media == []
    assert reply.read_at is None and reply.opt_out is None and reply.received_at is not None


def test_a_reply_goes_with_its_contact_and_the_latest_delivery_to_that_number(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    make_delivery(to=RECIPIENT, status="delivered", sid="SM" + "1" * 32)
    latest = make_delivery(to=RECIPIENT, status="delivered", sid="SM" + "2" * 32)
    make_delivery(to=RECIPIENT, status="canceled")  # opted out: never reached the phone
    make_delivery(to="+15005550009", status="delivered")
    with app.app_context():
        contact = Contact(name="Ada", phone=RECIPIENT)
        db.session.add(contact)
        db.session.commit()
        contact_id = contact.id
    post_signed(INBOUND, inbound_params("ok"))
    [reply] = stored(app)
    assert (reply.contact_id, reply.delivery_id) == (contact_id, latest)


def test_a_reply_from_a_stranger_is_kept_with_no_contact_or_delivery(app: Flask, post_signed: Post) -> None:
    post_signed(INBOUND, inbound_params("who is this?"))
    [reply] = stored(app)
    assert (reply.contact_id, reply.delivery_id) == (None, None)


@pytest.mark.parametrize("body, opt_out", [("STOP", "stop"), ("start", "start"), ("INFO", None)])
def test_stop_and_start_are_kept_too_marked_as_opt_out_notes(
    app: Flask, post_signed: Post, body: str, opt_out: str | None
) -> None:
    post_signed(INBOUND, inbound_params(body))
    [reply] = stored(app)
    assert (reply.body, reply.opt_out) == (body, opt_out)


def test_twilios_opt_out_type_marks_the_note(app: Flask, post_signed: Post) -> None:
    post_signed(INBOUND, inbound_params("ARRET", MessagingServiceSid="MG" + "e" * 32, OptOutType="STOP"))
    assert stored(app)[0].opt_out == "stop"


def test_an_mms_keeps_its_media_urls_and_types_even_with_an_empty_body(app: Flask, post_signed: Post) -> None:
    base = "https://api.twilio.com/2010-04-01/Accounts/AC" + "0" * 32 + "/Messages/SM" + "d" * 32 + "/Media/"
    params = inbound_params(
        "",
        NumMedia="2",
        MediaUrl0=base + "ME" + "1" * 32,
        MediaContentType0="image/jpeg",
        MediaUrl1=base + "ME" + "2" * 32,
        MediaContentType1="video/mp4",
    )
    assert post_signed(INBOUND, params).status_code == 200
    [reply] = stored(app)
    assert (reply.body, reply.num_media) == ("", 2)
    assert reply.media == [
        {"url": base + "ME" + "1" * 32, "content_type": "image/jpeg"},
        {"url": base + "ME" + "2" * 32, "content_type": "video/mp4"},
    ]


@pytest.mark.parametrize(
    "sender, body",
    [
        (RECIPIENT, "x" * 1600),
        (RECIPIENT, "on my way 🚗💨 <b>&amp;</b>"),
        ("72345", "short code reply"),
        ("ACME Ltd", "alphanumeric sender"),
    ],
)
def test_awkward_replies_are_kept_as_sent(app: Flask, post_signed: Post, sender: str, body: str) -> None:
    assert post_signed(INBOUND, inbound_params(body, From=sender)).status_code == 200
    [reply] = stored(app)
    assert (reply.from_number, reply.body) == (sender, body)


def test_unsigned_or_tampered_inbound_is_refused_and_nothing_is_stored(
    app: Flask, client: FlaskClient, post_signed: Post
) -> None:
    params = inbound_params("hello")
    assert client.post(INBOUND, data=params).status_code == 403
    signature = sign(PUBLIC_BASE + INBOUND, params)
    tampered = {**params, "Body": "hello, changed"}
    assert client.post(INBOUND, data=tampered, headers={"X-Twilio-Signature": signature}).status_code == 403
    assert post_signed(INBOUND, params, signed_url=PUBLIC_BASE + "/elsewhere").status_code == 403
    assert stored(app) == []
