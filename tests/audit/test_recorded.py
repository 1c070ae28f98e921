"""Every action an operator (or a recipient, or Twilio) takes lands in the audit log once, with
who, what, from where and the details that matter, through the real routes, webhooks and CLI."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from smsdash.compose.service import Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import Contact, Delivery, Group, InboundMessage, Message, MessageTemplate, OptOut, User, utcnow
from smsdash.schedules.when import Later
from tests.audit.helpers import TEST_CLIENT_ADDRESS, assert_by_operator, entries_for, only_entry
from tests.conftest import csrf_token_from
from tests.fixtures_webhooks import callback_params, inbound_params

Post = Callable[..., TestResponse]
CHICAGO = ZoneInfo("America/Chicago")
RECIPIENT = "+15005550006"  # who inbound_params' replies come from
OUR_NUMBER = "+15005550001"


def _token(client: FlaskClient, page: str = "/contacts/new") -> str:
    return csrf_token_from(client.get(page).get_data(as_text=True))


def _schedule(app: Flask, operator: User) -> int:
    with app.app_context():
        later = Later((utcnow() + timedelta(hours=2)).replace(second=0, microsecond=0), "America/Chicago")
        numbers = [Recipient("+14155550101"), Recipient("+14155550102")]
        return compose_message("Shift at 7", numbers, operator.id, later=later).id


# ---- scheduled messages ------------------------------------------------------------------------


def test_editing_a_scheduled_text_records_what_changed(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    message_id = _schedule(app, operator)
    with app.app_context():
        message = db.session.get(Message, message_id)
        assert message is not None and message.send_at is not None
        send_at = f"{message.send_at.astimezone(CHICAGO):%Y-%m-%dT%H:%M}"
    data = {"csrf_token": _token(logged_in, "/scheduled"), "send_at": send_at, "send_zone": "America/Chicago"}
    assert logged_in.post(f"/scheduled/{message_id}/edit", data={**data, "body": "Shift at 8"}).status_code == 302
    entry = only_entry(app, "message.edit")
    assert_by_operator(entry, operator)
    assert (entry.target_type, entry.target_id, entry.details) == (
        "message",
        message_id,
        {"body": True, "deliveries": 2},
    )


def test_moving_a_scheduled_message_records_the_new_time(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    message_id = _schedule(app, operator)
    local = (datetime.now(CHICAGO) + timedelta(days=1)).replace(second=0, microsecond=0)
    data = {
        "csrf_token": _token(logged_in, "/scheduled"),
        "send_at": f"{local:%Y-%m-%dT%H:%M}",
        "send_zone": "America/Chicago",
        "body": "Shift at 7",
    }
    assert logged_in.post(f"/scheduled/{message_id}/edit", data=data).status_code == 302
    entry = only_entry(app, "message.edit")
    assert_by_operator(entry, operator)
    assert entry.target_id == message_id
    assert entry.details == {
        "send_at": local.astimezone(UTC).isoformat(),
        "send_zone": "America/Chicago",
        "deliveries": 2,
    }


def test_canceling_from_the_page_records_how_many_deliveries(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    message_id = _schedule(app, operator)
    logged_in.post(f"/scheduled/{message_id}/cancel", data={"csrf_token": _token(logged_in, "/scheduled")})
    entry = only_entry(app, "message.cancel")
    assert_by_operator(entry, operator)
    assert (entry.target_type, entry.target_id, entry.details) == ("message", message_id, {"deliveries": 2})
    # a second cancel finds nothing waiting: it changes nothing, so it records nothing
    logged_in.post(f"/scheduled/{message_id}/cancel", data={"csrf_token": _token(logged_in, "/scheduled")})
    assert len(entries_for(app, "message.cancel")) == 1


# ---- retry and reply ---------------------------------------------------------------------------


def test_a_retry_records_the_delivery_and_its_error(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    with app.app_context():
        message = Message(body="Hello", recipient_count=1)
        db.session.add(message)
        db.session.flush()
        delivery = Delivery(message_id=message.id, to_number="+14155550000", status="failed", body="Hello")
        delivery.error_code = 20429
        db.session.add(delivery)
        db.session.commit()
        message_id, delivery_id = message.id, delivery.id
    token = _token(logged_in, f"/messages/{message_id}")
    assert logged_in.post(f"/messages/{message_id}/deliveries/{delivery_id}/retry", data={"csrf_token": token})
    entry = only_entry(app, "delivery.retry")
    assert_by_operator(entry, operator)
    assert (entry.target_type, entry.target_id) == ("delivery", delivery_id)
    assert entry.details == {"message_id": message_id, "to": "+14155550000", "error_code": 20429}


def test_a_reply_from_the_inbox_records_the_reply_it_answers(
    app: Flask, logged_in: FlaskClient, operator: User, post_signed: Post
) -> None:
    assert post_signed("/webhooks/twilio/inbound", inbound_params("running late")).status_code == 200
    with app.app_context():
        answered = db.session.scalar(select(InboundMessage.id))
    token = _token(logged_in, f"/inbox/{RECIPIENT}")
    assert logged_in.post(f"/inbox/{RECIPIENT}", data={"body": "No problem", "csrf_token": token}).status_code == 302
    entry = only_entry(app, "inbox.reply")
    assert_by_operator(entry, operator)
    assert (entry.target_type, entry.target_id, entry.details) == ("inbound", answered, {"to": RECIPIENT})


def test_a_refused_reply_records_nothing(app: Flask, logged_in: FlaskClient, post_signed: Post) -> None:
    post_signed("/webhooks/twilio/inbound", inbound_params("running late"))
    token = _token(logged_in, f"/inbox/{RECIPIENT}")
    refused = logged_in.post(f"/inbox/{RECIPIENT}", data={"body": "Hi {{first_name}}", "csrf_token": token})
    assert refused.status_code == 422
    assert entries_for(app, "inbox.reply") == []
    with app.app_context():
        assert db.session.scalars(select(Delivery)).all() == []


# ---- contacts and groups -----------------------------------------------------------------------


def test_adding_editing_and_deleting_a_contact_are_each_recorded(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    data = {"name": "Ada", "phone": "(415) 555-0101", "csrf_token": _token(logged_in)}
    assert logged_in.post("/contacts/new", data=data).status_code == 302
    with app.app_context():
        contact_id = db.session.scalar(select(Contact.id))
    created = only_entry(app, "contact.create")
    assert_by_operator(created, operator)
    assert (created.target_type, created.target_id) == ("contact", contact_id)
    assert created.details == {"name": "Ada", "phone": "+14155550101"}

    edit = {"name": "Ada Lovelace", "phone": "+14155550101", "fields": "site: North", "csrf_token": data["csrf_token"]}
    assert logged_in.post(f"/contacts/{contact_id}/edit", data=edit).status_code == 302
    edited = only_entry(app, "contact.edit")
    assert (edited.target_id, edited.details) == (contact_id, {"name": "Ada Lovelace", "changed": ["fields", "name"]})

    assert logged_in.post(f"/contacts/{contact_id}/delete", data={"csrf_token": data["csrf_token"]}).status_code == 302
    deleted = only_entry(app, "contact.delete")
    assert_by_operator(deleted, operator)
    assert (deleted.target_id, deleted.details) == (contact_id, {"name": "Ada Lovelace", "phone": "+14155550101"})


def test_an_import_records_its_counts(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    with app.app_context():
        db.session.add(Contact(name="Old Name", phone="+14155550102"))
        db.session.commit()
    content = b"name,phone\nAda,+14155550101\nBob,+14155550102\nNobody,12\n"
    response = logged_in.post(
        "/contacts/import",
        data={"csrf_token": _token(logged_in, "/contacts/import"), "file": (io.BytesIO(content), "team.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422  # the bad line is reported; the good ones are kept
    entry = only_entry(app, "contact.import")
    assert_by_operator(entry, operator)
    assert (entry.target_type, entry.target_id) == (None, None)
    assert entry.details == {"file": "team.csv", "created": 1, "updated": 1, "unchanged": 0, "skipped": 1}


def test_group_changes_are_recorded_with_what_changed(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    with app.app_context():
        contact = Contact(name="Ada", phone="+14155550101")
        db.session.add(contact)
        db.session.commit()
        contact_id = contact.id
    token = _token(logged_in, "/groups")
    assert logged_in.post("/groups", data={"name": "Staff", "csrf_token": token}).status_code == 302
    with app.app_context():
        group_id = db.session.scalar(select(Group.id))
    created = only_entry(app, "group.create")
    assert_by_operator(created, operator)
    assert (created.target_type, created.target_id, created.details) == ("group", group_id, {"name": "Staff"})

    url = f"/groups/{group_id}"
    logged_in.post(url, data={"rename-name": "Team", "csrf_token": token})
    logged_in.post(url, data={"member-phone": "415 555 0101", "csrf_token": token})
    logged_in.post(url, data={"member-phone": "415 555 0101", "csrf_token": token})  # already in: no change
    logged_in.post(f"{url}/members/{contact_id}/remove", data={"csrf_token": token})
    logged_in.post(f"{url}/members/{contact_id}/remove", data={"csrf_token": token})  # already out: no change
    assert [e.details for e in entries_for(app, "group.edit")] == [
        {"name": "Team", "was": "Staff"},
        {"name": "Team", "added": "+14155550101"},
        {"name": "Team", "removed": "+14155550101"},
    ]

    assert logged_in.post(f"{url}/delete", data={"csrf_token": token}).status_code == 302
    deleted = only_entry(app, "group.delete")
    assert (deleted.target_id, deleted.details) == (group_id, {"name": "Team"})


# ---- templates ---------------------------------------------------------------------------------


def test_template_changes_are_each_recorded(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    token = _token(logged_in, "/templates/new")
    assert logged_in.post("/templates/new", data={"name": "Shift", "body": "At 7", "csrf_token": token}).status_code
    with app.app_context():
        template_id = db.session.scalar(select(MessageTemplate.id))
    created = only_entry(app, "template.create")
    assert_by_operator(created, operator)
    assert (created.target_type, created.target_id, created.details) == ("template", template_id, {"name": "Shift"})

    edit = {"name": "Shift", "body": "At 8", "csrf_token": token}
    logged_in.post(f"/templates/{template_id}/edit", data=edit)
    assert only_entry(app, "template.edit").details == {"name": "Shift", "changed": ["body"]}

    logged_in.post(f"/templates/{template_id}/duplicate", data={"csrf_token": token})
    with app.app_context():
        copy_id = db.session.scalar(select(MessageTemplate.id).where(MessageTemplate.id != template_id))
    duplicated = only_entry(app, "template.duplicate")
    assert duplicated.target_id == copy_id
    assert duplicated.details == {"name": "Shift (copy)", "from_template": template_id}

    logged_in.post(f"/templates/{template_id}/archive", data={"csrf_token": token})
    logged_in.post(f"/templates/{template_id}/archive", data={"csrf_token": token})  # the same button restores
    assert only_entry(app, "template.archive").target_id == template_id
    assert only_entry(app, "template.restore").target_id == template_id


# ---- opt-outs: no operator, so the entry names the recipient or Twilio ---------------------------


def test_stop_and_start_replies_are_recorded_as_the_recipient(app: Flask, post_signed: Post) -> None:
    app.config.update(TWILIO_FROM_NUMBER=OUR_NUMBER, TWILIO_MESSAGING_SERVICE_SID="")
    assert post_signed("/webhooks/twilio/inbound", inbound_params("STOP", sid="SM" + "1" * 32)).status_code == 200
    assert post_signed("/webhooks/twilio/inbound", inbound_params("STOP", sid="SM" + "2" * 32)).status_code == 200
    added = only_entry(app, "optout.add")  # the second STOP changed nothing
    with app.app_context():
        [opt_out_id] = db.session.scalars(select(OptOut.id)).all()
    assert (added.actor_id, added.actor_label, added.address) == (None, f"recipient {RECIPIENT}", TEST_CLIENT_ADDRESS)
    assert (added.target_type, added.target_id) == ("optout", opt_out_id)
    assert added.details == {"phone": RECIPIENT, "sender": OUR_NUMBER, "source": "inbound"}

    assert post_signed("/webhooks/twilio/inbound", inbound_params("START", sid="SM" + "3" * 32)).status_code == 200
    removed = only_entry(app, "optout.remove")
    assert (removed.actor_label, removed.target_id) == (f"recipient {RECIPIENT}", opt_out_id)
    assert removed.details == {"phone": RECIPIENT, "sender": OUR_NUMBER, "source": "inbound"}


def test_a_21610_from_twilio_is_recorded_as_twilio(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    sid = "SM" + "a" * 32
    delivery_id = make_delivery(status="sent", sid=sid, to=RECIPIENT)
    params = callback_params(sid, "failed", ErrorCode="21610", To=RECIPIENT, From=OUR_NUMBER)
    assert post_signed("/webhooks/twilio/status", params, query={"d": delivery_id}).status_code == 200
    entry = only_entry(app, "optout.add")
    assert (entry.actor_id, entry.actor_label) == (None, "twilio")
    assert entry.details["phone"] == RECIPIENT and entry.details["source"] == "twilio_21610"
