"""Personalised sends through the real job and SDK: each recipient's own text reaches Twilio, and
the duplicate-send look-up after a timeout compares the text that delivery was sent."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select, update

from smsdash.compose.service import Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import Contact, ContactField, Delivery
from smsdash.simulator import Simulator
from tests.sending.test_job import burst, deliveries, events, run_job_once

ADA, BOB, TYPED = "+14155550101", "+14155550102", "+14155550109"
BODY = "Hi {{first_name|there}}, your shift at {{ site | the depot }} starts soon"


@pytest.fixture
def send_app(twilio_app: Flask) -> Flask:
    twilio_app.config.update(SEND_RETRY_BASE_SECONDS=0.05, SEND_RETRY_MAX_SECONDS=0.2, SEND_MAX_ATTEMPTS=3)
    return twilio_app


def _contacts(app: Flask) -> None:
    with app.app_context():
        ada = Contact(name="Ada Lovelace", phone=ADA, fields=[ContactField(name="site", value="Leeds")])
        db.session.add_all([ada, Contact(name="Bob", phone=BOB)])
        db.session.commit()


def test_each_recipient_gets_its_own_text_at_twilio(send_app: Flask, simulator: Simulator) -> None:
    _contacts(send_app)
    with send_app.app_context():
        # Typed numbers, as `sms send --to` passes them: the two that are contacts are linked.
        message = compose_message(BODY, [Recipient(ADA), Recipient(BOB), Recipient(TYPED)], author_id=None)
        assert message.body == BODY  # the message keeps what the operator wrote
    burst(send_app)
    assert {m.to: m.params["Body"] for m in simulator.messages} == {
        ADA: "Hi Ada, your shift at Leeds starts soon",
        BOB: "Hi Bob, your shift at the depot starts soon",
        TYPED: "Hi there, your shift at the depot starts soon",
    }
    assert {d.to_number: d.body for d in deliveries(send_app)} == {m.to: m.params["Body"] for m in simulator.messages}
    with send_app.app_context():
        linked = dict(db.session.execute(select(Delivery.to_number, Delivery.contact_id)).all())
    assert linked[ADA] is not None and linked[TYPED] is None


def test_a_timed_out_personalised_send_is_adopted_by_its_own_text_not_sent_twice(
    send_app: Flask, simulator: Simulator
) -> None:
    _contacts(send_app)
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="close")
    with send_app.app_context():
        compose_message(BODY, [Recipient(ADA)], author_id=None)
    (delivery,) = deliveries(send_app)
    assert run_job_once(send_app, delivery.id) == {"retry": 1}
    simulator.set_knobs(timeout_rate=0.0)
    burst(send_app)
    (after,) = deliveries(send_app)
    assert len(simulator.messages) == 1  # the message's own body, with its {{...}}, would match nothing
    assert (after.status, after.external_message_id) == ("sent", simulator.messages[0].sid)
    assert any(kind == "sent" and "adopted" in (detail or "") for kind, _, detail in events(send_app, after.id))


def test_the_look_up_does_not_adopt_another_recipients_text_to_the_same_number(
    send_app: Flask, simulator: Simulator
) -> None:
    # The same number in two messages with different texts: the second one's timed-out attempt
    # must not take the first one's message at Twilio for its own.
    _contacts(send_app)
    with send_app.app_context():
        compose_message("Shift at {{site}} moved", [Recipient(ADA)], author_id=None)
    burst(send_app)
    with send_app.app_context():
        db.session.execute(update(ContactField).values(value="York"))  # Ada moved to York
        db.session.commit()
        second = compose_message("Shift at {{site}} moved", [Recipient(ADA)], author_id=None)
        second_delivery = db.session.scalar(select(Delivery.id).where(Delivery.message_id == second.id))
    simulator.set_knobs(timeout_rate=1.0, timeout_mode="close")
    assert run_job_once(send_app, second_delivery) == {"retry": 1}
    simulator.set_knobs(timeout_rate=0.0)
    burst(send_app)
    bodies = [m.params["Body"] for m in simulator.messages]
    assert bodies == ["Shift at Leeds moved", "Shift at York moved"]  # adopted its own, sent nothing more
    with send_app.app_context():
        sids = db.session.scalars(select(Delivery.external_message_id).order_by(Delivery.id)).all()
    assert sids == [m.sid for m in simulator.messages]
