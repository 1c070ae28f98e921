"""On the message page, each delivery shows the replies it got and links to the conversation;
the roll-up and the CSV export count them."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from smsdash.extensions import db
from smsdash.models import Delivery
from tests.fixtures_webhooks import inbound_params

INBOUND = "/webhooks/twilio/inbound"
ADA = "+15005550006"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

Post = Callable[..., TestResponse]


def delivered(app: Flask, make_delivery: Callable[..., int], to: str = ADA) -> tuple[int, int]:
    delivery_id = make_delivery(to=to, status="delivered", sid=f"SM{to[1:]:0>32}")
    with app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        assert delivery is not None
        delivery.delivered_at = T0
        db.session.commit()
        return delivery_id, delivery.message_id


def test_a_delivery_shows_its_reply_and_how_long_after_delivery_linking_to_the_thread(
    app: Flask, logged_in: FlaskClient, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    _, message_id = delivered(app, make_delivery)
    with time_machine.travel(T0.replace(minute=4), tick=False):
        post_signed(INBOUND, inbound_params("running 20 min late"))
    page = logged_in.get(f"/messages/{message_id}").get_data(as_text=True)
    assert '<a class="replied" href="/inbox/+15005550006">1 reply, first 4 min after delivery' in page
    assert 'data-replies="1"' in page


def test_the_message_poll_brings_a_new_reply_live(
    app: Flask, logged_in: FlaskClient, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id, message_id = delivered(app, make_delivery)
    make_delivery(to="+15005550007", status="sent")  # keeps the message in flight, so it polls
    page = logged_in.get(f"/messages/{message_id}").get_data(as_text=True)
    version = re.search(r'data-version="([0-9a-f]+)"', page)
    assert version
    url = f"/messages/{message_id}/poll?v={version.group(1)}&shown={delivery_id}"
    assert logged_in.get(url).status_code == 204
    post_signed(INBOUND, inbound_params("thanks"))
    changed = logged_in.get(url).get_data(as_text=True)
    assert 'class="replied"' in changed and 'data-replies="1"' in changed


def test_the_csv_export_counts_each_deliverys_replies(
    app: Flask, logged_in: FlaskClient, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id, message_id = delivered(app, make_delivery)
    for n in range(2):
        post_signed(INBOUND, inbound_params(f"reply {n}", sid=f"SM{n:032d}"))
    rows = list(
        csv.DictReader(io.StringIO(logged_in.get(f"/messages/{message_id}/deliveries.csv").get_data(as_text=True)))
    )
    assert [(r["delivery_id"], r["reply_count"]) for r in rows] == [(str(delivery_id), "2")]
