"""The inbox, a conversation's thread, the nav badge and answering, driven through signed inbound
webhooks and the pages an operator uses."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from smsdash.extensions import db
from smsdash.models import Contact, Delivery, InboundMessage, User
from tests.conftest import TEST_PASSWORD, csrf_token_from
from tests.fixtures_webhooks import inbound_params

INBOUND = "/webhooks/twilio/inbound"
ADA = "+15005550006"
BOB = "+15005550007"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

Post = Callable[..., TestResponse]


def reply(post_signed: Post, body: str, sender: str = ADA, n: int = 0, **extra: str) -> None:
    sid = f"SM{abs(hash((sender, body, n))):032x}"[:34]
    assert post_signed(INBOUND, inbound_params(body, sid=sid, From=sender, **extra)).status_code == 200


def add_contact(app: Flask, name: str, phone: str) -> int:
    with app.app_context():
        contact = Contact(name=name, phone=phone)
        db.session.add(contact)
        db.session.commit()
        return contact.id


def html(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def rows(page: str) -> list[str]:
    return re.findall(r'<tr data-number="([^"]+)"', page)


def unread_badges(page: str) -> list[str]:
    return re.findall(r'class="badge unread-count"[^>]*>(\d+)', page)


def test_inbox_lists_one_row_per_number_newest_first_with_name_last_text_and_unread(
    app: Flask, logged_in: FlaskClient, post_signed: Post
) -> None:
    add_contact(app, "Ada Lovelace", ADA)
    with time_machine.travel(T0, tick=False) as clock:
        reply(post_signed, "running 20 min late")
        clock.shift(60)
        reply(post_signed, "who is this?", sender=BOB)
        clock.shift(60)
        reply(post_signed, "here now", n=1)
    page = html(logged_in, "/inbox")
    assert rows(page) == [ADA, BOB]
    assert "Ada Lovelace" in page and "here now" in page and "running 20 min late" not in page
    assert unread_badges(page)[:3] == ["3", "2", "1"]  # the nav bar's total, then Ada's 2, Bob's 1


def test_inbox_search_by_number_name_or_any_text_and_the_unread_filter(
    app: Flask, logged_in: FlaskClient, post_signed: Post
) -> None:
    add_contact(app, "Ada Lovelace", ADA)
    reply(post_signed, "Running LATE")
    reply(post_signed, "see you", sender=BOB)
    assert rows(html(logged_in, "/inbox?q=lovelace")) == [ADA]
    assert rows(html(logged_in, "/inbox?q=555-0007")) == [BOB]
    assert rows(html(logged_in, "/inbox?q=late")) == [ADA]
    html(logged_in, f"/inbox/{ADA}")
    assert rows(html(logged_in, "/inbox?unread=1")) == [BOB]


def test_opening_a_thread_marks_it_read_for_every_operator(
    app: Flask, client: FlaskClient, logged_in: FlaskClient, post_signed: Post
) -> None:
    """Shared read state: the inbox is the team's queue of people waiting for an answer."""
    reply(post_signed, "one")
    reply(post_signed, "two", n=1)
    assert unread_badges(html(logged_in, "/messages")) == ["2"]
    html(logged_in, f"/inbox/{ADA}")
    with app.app_context():
        assert db.session.scalar(select(InboundMessage.id).where(InboundMessage.read_at.is_(None))) is None
        other = User(email="other@example.com")
        other.set_password(TEST_PASSWORD)
        db.session.add(other)
        db.session.commit()
    second = app.test_client()
    token = csrf_token_from(html(second, "/login"))
    second.post("/login", data={"email": "other@example.com", "password": TEST_PASSWORD, "csrf_token": token})
    assert unread_badges(html(second, "/inbox")) == []


def test_the_nav_badge_and_the_inbox_poll_answer_204_until_a_reply_arrives(
    app: Flask, logged_in: FlaskClient, post_signed: Post
) -> None:
    reply(post_signed, "first")
    page = html(logged_in, "/messages")
    nav = re.search(r'hx-get="(/inbox/unread\?[^"]+)"', page)
    inbox = re.search(r'id="conversations" hx-get="(/inbox/poll\?[^"]+)"', html(logged_in, "/inbox"))
    assert nav and inbox
    nav_url, inbox_url = nav.group(1).replace("&amp;", "&"), inbox.group(1).replace("&amp;", "&")
    assert logged_in.get(nav_url).status_code == 204
    assert logged_in.get(inbox_url).status_code == 204
    reply(post_signed, "second <b>bold</b>", sender=BOB)
    changed = logged_in.get(nav_url)
    assert changed.status_code == 200 and unread_badges(changed.get_data(as_text=True)) == ["2"]
    listed = logged_in.get(inbox_url).get_data(as_text=True)
    assert rows(listed) == [BOB, ADA] and "second &lt;b&gt;bold&lt;/b&gt;" in listed


def test_the_thread_puts_our_deliveries_and_their_replies_in_time_order(
    app: Flask, logged_in: FlaskClient, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        first = make_delivery(to=ADA, status="delivered", sid="SM" + "1" * 32)
        clock.shift(30)
        reply(post_signed, "running 20 min late")
        clock.shift(30)
        second = make_delivery(to=ADA, status="sent", sid="SM" + "2" * 32)
        clock.shift(30)
        reply(post_signed, "STOP")
    page = html(logged_in, f"/inbox/{ADA}")
    order = re.findall(r'<li class="text (ours|theirs)" id="([dr]-\d+)"', page)
    assert [o for o, _ in order] == ["ours", "theirs", "ours", "theirs"]
    assert order[0][1] == f"d-{first}" and order[2][1] == f"d-{second}"
    assert 'data-status="delivered"' in page and 'data-status="sent"' in page
    assert "/messages/" in page and "Opt-out note" in page


def test_the_thread_poll_is_204_until_a_badge_moves_or_a_text_arrives(
    app: Flask, logged_in: FlaskClient, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(to=ADA, status="sent", sid="SM" + "1" * 32)
    reply(post_signed, "hello")
    found = re.search(r'id="thread"[^>]*hx-get="([^"]+)"', html(logged_in, f"/inbox/{ADA}"))
    assert found
    url = found.group(1).replace("&amp;", "&")
    assert logged_in.get(url).status_code == 204
    with app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        assert delivery is not None
        delivery.status = "delivered"
        delivery.updated_at = delivery.updated_at + timedelta(seconds=1)
        db.session.commit()
    changed = logged_in.get(url)
    assert changed.status_code == 200 and 'data-status="delivered"' in changed.get_data(as_text=True)
    reply(post_signed, "another", n=1)
    assert "another" in logged_in.get(url).get_data(as_text=True)
    with app.app_context():  # the operator was looking: what the poll showed is read
        assert db.session.scalar(select(InboundMessage.id).where(InboundMessage.read_at.is_(None))) is None


def _post_reply(client: FlaskClient, number: str, body: str) -> TestResponse:
    token = csrf_token_from(html(client, f"/inbox/{number}"))
    return client.post(f"/inbox/{number}", data={"body": body, "csrf_token": token})


def test_a_reply_from_the_thread_goes_through_the_compose_pipeline(
    app: Flask, logged_in: FlaskClient, post_signed: Post
) -> None:
    contact_id = add_contact(app, "Ada", ADA)
    reply(post_signed, "running 20 min late")
    response = _post_reply(logged_in, ADA, "No problem, {{name}}!")
    assert response.status_code == 302
    with app.app_context():
        [delivery] = db.session.scalars(select(Delivery)).all()
        assert (delivery.to_number, delivery.contact_id, delivery.body, delivery.status) == (
            ADA,
            contact_id,
            "No problem, Ada!",
            "queued",
        )
    page = html(logged_in, f"/inbox/{ADA}")
    assert "No problem, Ada!" in page and 'data-status="queued"' in page


def test_an_opted_out_number_shows_why_the_box_cannot_send_and_a_post_sends_nothing(
    app: Flask, logged_in: FlaskClient, post_signed: Post
) -> None:
    app.config.update(TWILIO_FROM_NUMBER="+15005550001", TWILIO_MESSAGING_SERVICE_SID="")
    reply(post_signed, "STOP")
    page = html(logged_in, f"/inbox/{ADA}")
    assert "opted out" in page and 'name="body"' not in page
    token = csrf_token_from(page)
    response = logged_in.post(f"/inbox/{ADA}", data={"body": "are you sure?", "csrf_token": token})
    assert response.status_code == 422 and "opted out" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(Delivery)).all() == []


def test_a_short_code_or_named_sender_is_shown_escaped_and_cannot_be_answered(
    app: Flask, logged_in: FlaskClient, post_signed: Post
) -> None:
    reply(post_signed, "<script>alert(1)</script> 🚗", sender="ACME <Ltd>")
    page = html(logged_in, "/inbox")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; 🚗" in page
    thread = html(logged_in, "/inbox/ACME <Ltd>")
    assert "<script>alert" not in thread and "ACME &lt;Ltd&gt;" in thread
    assert "not a phone number" in thread and 'name="body"' not in thread


def test_an_empty_body_with_media_and_a_1600_character_body_are_shown(
    app: Flask, logged_in: FlaskClient, post_signed: Post
) -> None:
    reply(post_signed, "x" * 1600)
    media_url = "https://api.twilio.com/2010-04-01/Accounts/AC" + "0" * 32 + "/Messages/SM1/Media/ME1"
    reply(post_signed, "", n=1, NumMedia="1", MediaUrl0=media_url, MediaContentType0="image/png")
    page = html(logged_in, f"/inbox/{ADA}")
    assert "x" * 1600 in page and "1 attachment" in page and "image/png" in page
    assert media_url not in page and "/inbox/media/" in page


def test_an_unknown_number_has_no_thread_and_cannot_be_texted_through_one(
    app: Flask, logged_in: FlaskClient, post_signed: Post
) -> None:
    reply(post_signed, "hello")
    assert logged_in.get(f"/inbox/{BOB}").status_code == 404
    token = csrf_token_from(html(logged_in, f"/inbox/{ADA}"))
    assert logged_in.post(f"/inbox/{BOB}", data={"body": "hi", "csrf_token": token}).status_code == 404
    with app.app_context():
        assert db.session.scalars(select(Delivery)).all() == []
