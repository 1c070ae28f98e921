"""The approval of a large send on the pages: the message page's panel (who may approve, who
waits, who decided and why), its forms and refusals, the list and /scheduled saying "awaiting
approval", the compose flash, and the live page updating when someone else decides."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import time_machine
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.compose.approval import approve
from smsdash.compose.service import Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import AuditEntry, Delivery, Message, User, utcnow
from smsdash.schedules.release import release_due
from smsdash.schedules.when import Later
from tests.compose.test_approval import NUMBERS, as_user, compose, statuses
from tests.conftest import add_operator_row, csrf_token_from, log_in_as
from tests.messages.test_live import LivePage


def log_in(app: Flask, user: User) -> FlaskClient:
    g.pop("csrf_token", None)  # flask-wtf keeps the token in g, which pytest-flask shares between clients
    return log_in_as(app.test_client(), user.email)


def page(client: FlaskClient, message_id: int) -> str:
    db.session.remove()  # every request its own session, as a server would (see test_live.py)
    g.pop("csrf_token", None)  # and its own CSRF token, of the client's session
    return client.get(f"/messages/{message_id}").get_data(as_text=True)


def post(client: FlaskClient, message_id: int, action: str, **data: str) -> tuple[int, str]:
    token = csrf_token_from(page(client, message_id))
    response = client.post(f"/messages/{message_id}/{action}", data={"csrf_token": token, **data})
    return response.status_code, response.get_data(as_text=True)


def test_another_sender_sees_approve_and_reject_with_a_labelled_reason(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    app.config["APPROVAL_THRESHOLD"] = 3
    message_id = compose(app, operator)
    sender = log_in(app, add_operator_row(app, "second@example.com", "sender"))
    html = page(sender, message_id)
    assert (
        "Awaiting approval: 3 recipients, composed by op@example.com. It goes out only after another operator approves it."
        in html
    )
    assert f'action="/messages/{message_id}/approve"' in html and f'action="/messages/{message_id}/reject"' in html
    label = re.search(r'<label for="(reject-reason-\d+)">Reason for rejecting', html)
    assert label and f'<textarea id="{label.group(1)}" name="reason" rows="2" required maxlength="500">' in html
    assert html.count('name="csrf_token"') >= 2
    assert 'data-status="awaiting-approval">awaiting approval</span> 3 recipients' in html


def test_the_author_waits_and_sees_no_buttons(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    app.config["APPROVAL_THRESHOLD"] = 3
    message_id = compose(app, operator)
    html = page(logged_in, message_id)
    assert "Waiting for another operator to approve it." in html
    assert "/approve" not in html and "/reject" not in html


def test_a_forged_self_approval_is_refused_with_a_sentence_and_audited(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    app.config["APPROVAL_THRESHOLD"] = 3
    message_id = compose(app, operator)
    for action, data in (("approve", {}), ("reject", {"reason": "nope"})):
        status, html = post(logged_in, message_id, action, **data)
        assert status == 403
        assert "You composed this message, so another operator must approve or reject it." in html
    assert statuses(app, message_id) == {"scheduled": 3}
    with app.app_context():
        denied = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "permission.denied")).all()
        assert [(e.actor_label, e.details["path"]) for e in denied] == [
            ("op@example.com", f"/messages/{message_id}/approve"),
            ("op@example.com", f"/messages/{message_id}/reject"),
        ]


def test_a_viewer_sees_no_buttons_and_is_refused(app: Flask, operator: User) -> None:
    app.config["APPROVAL_THRESHOLD"] = 3
    message_id = compose(app, operator)
    viewer = log_in(app, add_operator_row(app, "viewer@example.com", "viewer"))
    html = page(viewer, message_id)
    assert "Awaiting approval: 3 recipients" in html and "/approve" not in html
    token = csrf_token_from(html)
    response = viewer.post(f"/messages/{message_id}/approve", data={"csrf_token": token})
    assert response.status_code == 403 and "ask an admin for the sender role" in response.get_data(as_text=True)
    assert statuses(app, message_id) == {"scheduled": 3}


def test_approve_from_the_page(app: Flask, operator: User) -> None:
    app.config["APPROVAL_THRESHOLD"] = 3
    message_id = compose(app, operator)
    sender = log_in(app, add_operator_row(app, "second@example.com", "sender"))
    status, _ = post(sender, message_id, "approve")
    assert status == 302
    html = page(sender, message_id)
    assert f"Message #{message_id} approved: sending to 3 recipients." in html
    assert "Approved by second@example.com at <time" in html and "Awaiting approval" not in html
    assert statuses(app, message_id) == {"queued": 3}
    status, _ = post(sender, message_id, "approve")
    assert f"Not approved: Message #{message_id} was already approved, by second@example.com." in page(
        sender, message_id
    )


def test_reject_from_the_page_needs_a_reason_and_shows_it(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    app.config["APPROVAL_THRESHOLD"] = 3
    message_id = compose(app, operator)
    sender = log_in(app, add_operator_row(app, "second@example.com", "sender"))
    post(sender, message_id, "reject", reason="  ")
    assert "Not rejected: Give a reason for rejecting it" in page(sender, message_id)
    assert statuses(app, message_id) == {"scheduled": 3}
    post(sender, message_id, "reject", reason="Wrong group <b>county</b>")
    assert f"Message #{message_id} rejected: 3 deliveries will not be sent." in page(sender, message_id)
    author_view = page(logged_in, message_id)
    assert "Rejected by second@example.com: Wrong group &lt;b&gt;county&lt;/b&gt;" in author_view
    assert 'data-status="rejected">rejected</span> not sent' in author_view
    assert statuses(app, message_id) == {"canceled": 3}


def test_the_list_and_the_scheduled_page_say_awaiting_approval(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    app.config["APPROVAL_THRESHOLD"] = 3
    now_id = compose(app, operator)
    with app.app_context():
        at = (utcnow() + timedelta(hours=2)).replace(second=0, microsecond=0)
        later_id = compose_message("Later", [Recipient(n) for n in NUMBERS], operator.id, later=Later(at, "UTC")).id
    listing = logged_in.get("/messages").get_data(as_text=True)
    assert listing.count('data-status="awaiting-approval">awaiting approval</span> 3 recipients') == 2
    scheduled = logged_in.get("/scheduled").get_data(as_text=True)
    now_item = scheduled[scheduled.index(f'id="scheduled-{now_id}"') :]
    assert "goes out once another operator approves it" in now_item.split("</li>")[0]
    later_item = scheduled[scheduled.index(f'id="scheduled-{later_id}"') :].split("</li>")[0]
    assert f"needs approval before {at:%Y-%m-%d %H:%M} UTC" in later_item and "or it will not be sent" in later_item
    assert "Goes out <time" not in later_item
    assert f"It needs approval before {at:%Y-%m-%d %H:%M} UTC" in page(logged_in, later_id)


def test_compose_says_the_send_awaits_approval(app: Flask, logged_in: FlaskClient) -> None:
    app.config["APPROVAL_THRESHOLD"] = 3
    token = csrf_token_from(logged_in.get("/messages/new").get_data(as_text=True))
    response = logged_in.post(
        "/messages/new", data={"recipients": ", ".join(NUMBERS), "body": "Hi", "csrf_token": token}
    )
    assert response.status_code == 302
    html = logged_in.get(response.headers["Location"]).get_data(as_text=True)
    assert (
        "Awaiting approval: message #" in html
        and "goes to 3 recipients, so nothing is sent until another operator" in html
    )
    with app.app_context():
        assert set(db.session.scalars(select(Delivery.status))) == {"scheduled"}


def test_the_open_page_updates_when_someone_else_approves_a_scheduled_one(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    """A scheduled message approved changes no delivery's status: the approval is in the version."""
    app.config["APPROVAL_THRESHOLD"] = 3
    second = add_operator_row(app, "second@example.com", "sender")
    with app.app_context():
        at = utcnow() + timedelta(hours=2)
        message_id = compose_message("Later", [Recipient(n) for n in NUMBERS], operator.id, later=Later(at, "UTC")).id
    live = LivePage(logged_in, f"/messages/{message_id}")
    assert live.poll().status_code == 204
    with app.app_context():
        approve(message_id, as_user(second))
    answer = live.poll()
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert '<div id="approval-panel" hx-swap-oob="innerHTML">' in body and "Approved by second@example.com" in body
    assert "awaiting approval" not in body


def test_not_approved_by_its_time_the_page_says_why_it_did_not_go(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    app.config["APPROVAL_THRESHOLD"] = 3
    with app.app_context():
        at = (utcnow() + timedelta(minutes=30)).replace(second=0, microsecond=0)
        message_id = compose_message("Later", [Recipient(n) for n in NUMBERS], operator.id, later=Later(at, "UTC")).id
    with time_machine.travel(time.time() + 31 * 60):
        assert "Its scheduled time has passed without an approval: it will not be sent." in page(logged_in, message_id)
        with app.app_context():
            assert release_due() == 0
        html = page(logged_in, message_id)
    assert f"Not sent: it was not approved before its scheduled time ({at:%Y-%m-%d %H:%M} UTC (" in html
    assert 'data-status="expired">not approved in time</span> not sent' in html
    with app.app_context():
        assert db.session.scalar(select(Message.approval).where(Message.id == message_id)) == "expired"
