"""Against the simulator: the auto-reply number answers by itself, and an MMS's attachments are
fetched through the app with the account's credentials, which never reach the browser."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.compose.service import Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import Delivery, InboundMessage
from smsdash.sending import job as send_job
from smsdash.simulator import AUTO_REPLY_BODY, TO_AUTO_REPLY, Simulator
from smsdash.simulator.store import PLACEHOLDER_MEDIA
from smsdash.twilio.client import build_client

INBOUND_URL = "https://smsdash.example.com/webhooks/twilio/inbound"
ADA = "+15005550006"


def _point_inbound_at_the_app(simulator: Simulator) -> None:
    # pytest-flask's request context is this thread's: end the transaction logging in left open.
    db.session.remove()
    sdk = build_client(simulator.client_config())
    sdk.messaging.v1.services(simulator.messaging_service_sid).update(inbound_request_url=INBOUND_URL)


def test_the_auto_reply_number_answers_after_delivery_and_the_reply_meets_its_delivery(
    twilio_app: Flask, simulator: Simulator
) -> None:
    _point_inbound_at_the_app(simulator)
    with twilio_app.app_context():
        message = compose_message("Shift at 9?", [Recipient(TO_AUTO_REPLY)], author_id=None)
        [delivery_id] = db.session.scalars(select(Delivery.id).where(Delivery.message_id == message.id)).all()
        db.session.commit()
        send_job.send_delivery(delivery_id)
    records = simulator.flush_callbacks()
    assert [r.params.get("MessageStatus") or "reply" for r in records] == ["sent", "delivered", "reply"]
    assert all(r.status_code == 200 for r in records)
    assert records[-1].params["MessageSid"].startswith("SM")
    assert records[-1].params["MessagingServiceSid"] == simulator.messaging_service_sid
    with twilio_app.app_context():
        [reply] = db.session.scalars(select(InboundMessage)).all()
        assert (reply.from_number, reply.body, reply.delivery_id) == (TO_AUTO_REPLY, AUTO_REPLY_BODY, delivery_id)


def test_media_is_fetched_through_the_app_and_the_token_never_reaches_the_browser(
    twilio_app: Flask, simulator: Simulator, logged_in: FlaskClient, client: FlaskClient
) -> None:
    _point_inbound_at_the_app(simulator)
    record = simulator.inbound(ADA, "", media=["image/png"])
    assert record is not None and record.status_code == 200
    assert record.params["MediaUrl0"].startswith("https://api.twilio.com/2010-04-01/Accounts/")
    with twilio_app.app_context():
        reply_id = db.session.scalar(select(InboundMessage.id))
    thread = logged_in.get(f"/inbox/{ADA}").get_data(as_text=True)
    assert simulator.auth_token not in thread and "api.twilio.com" not in thread
    response = logged_in.get(f"/inbox/media/{reply_id}/0")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.get_data() == PLACEHOLDER_MEDIA["image/png"]
    assert simulator.auth_token not in str(response.headers) and simulator.account_sid not in str(response.headers)
    assert logged_in.get(f"/inbox/media/{reply_id}/1").status_code == 404


def test_a_media_url_off_twilio_or_of_another_account_is_never_fetched_with_our_credentials(
    twilio_app: Flask, simulator: Simulator, logged_in: FlaskClient
) -> None:
    with twilio_app.app_context():
        for n, url in enumerate(
            [
                "https://attacker.example/steal",
                "https://api.twilio.com/2010-04-01/Accounts/AC" + "9" * 32 + "/Messages/MM1/Media/ME1",
            ]
        ):
            db.session.add(
                InboundMessage(message_sid=f"MM{n}", from_number=ADA, media=[{"url": url, "content_type": "image/png"}])
            )
        db.session.commit()
        ids = db.session.scalars(select(InboundMessage.id)).all()
    assert [logged_in.get(f"/inbox/media/{i}/0").status_code for i in ids] == [404, 404]


def test_media_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/inbox/media/1/0")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
