"""The validity window: `sms send --valid-for` and the page's "don't deliver after" reach Twilio
as ValidityPeriod, out-of-range values are refused, and a message the (simulated) Twilio drops
for it shows 30036 in plain words."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import Delivery, Message
from smsdash.simulator import Simulator
from smsdash.twilio.error_codes import explain
from smsdash.worker.runner import run_worker
from tests.conftest import csrf_token_from

DELIVERED = "+14155550123"  # any number the simulator plays as delivered


def _send(runner: Any, *extra: str) -> Any:
    return runner.invoke(args=["sms", "send", "--to", DELIVERED, "--body", "Gate code 4412", *extra])


def _delivery(app: Flask) -> Delivery:
    with app.app_context():
        delivery = db.session.scalars(select(Delivery)).one()
        db.session.expunge(delivery)
        return delivery


def test_valid_for_reaches_twilio_as_validity_period(twilio_app: Flask, simulator: Simulator, runner: Any) -> None:
    assert _send(runner, "--valid-for", "600").exit_code == 0
    assert _send(runner).exit_code == 0
    run_worker(twilio_app, burst=True)
    assert [m.params.get("ValidityPeriod") for m in simulator.messages] == ["600", None]
    with twilio_app.app_context():
        assert list(db.session.scalars(select(Message.validity_seconds).order_by(Message.id))) == [600, None]


def test_valid_for_out_of_range_is_refused(app: Flask, runner: Any) -> None:
    for value in ("0", "36001"):
        result = _send(runner, "--valid-for", value)
        assert result.exit_code == 2 and "1<=x<=36000" in result.output
    with app.app_context():
        assert db.session.scalars(select(Message)).all() == []


def test_the_page_sends_minutes_as_seconds_and_refuses_too_many(
    twilio_app: Flask, simulator: Simulator, logged_in: FlaskClient
) -> None:
    def post(minutes: str) -> Any:
        token = csrf_token_from(logged_in.get("/messages/new").get_data(as_text=True))
        form = {"recipients": DELIVERED, "body": "Gate code", "valid_minutes": minutes, "csrf_token": token}
        return logged_in.post("/messages/new", data=form)

    refused = post("601")
    assert refused.status_code == 422 and "Give between 1 and 600 minutes." in refused.get_data(as_text=True)
    assert post("5").status_code == 302
    run_worker(twilio_app, burst=True)
    assert [m.params.get("ValidityPeriod") for m in simulator.messages] == ["300"]


def test_a_message_twilio_held_past_its_validity_fails_30036_in_plain_words(
    twilio_app: Flask, simulator: Simulator, runner: Any
) -> None:
    simulator.set_knobs(queue_delay=3600)  # the sender's queue is an hour deep
    assert _send(runner, "--valid-for", "60").exit_code == 0
    run_worker(twilio_app, burst=True)
    simulator.flush_callbacks()
    delivery = _delivery(twilio_app)
    assert (delivery.status, delivery.error_code) == ("failed", 30036)
    assert explain(30036).meaning.startswith("Not sent: it was still waiting in Twilio's queue when its time limit")


def test_a_message_sent_within_its_validity_is_delivered(twilio_app: Flask, simulator: Simulator, runner: Any) -> None:
    simulator.set_knobs(queue_delay=30)
    assert _send(runner, "--valid-for", "60").exit_code == 0
    run_worker(twilio_app, burst=True)
    simulator.flush_callbacks()
    assert _delivery(twilio_app).status == "delivered"
