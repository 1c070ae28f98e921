"""The compose page: recipients from typed numbers, contacts and groups; live counters; bad input;
the large-send confirm step; Send creating the message."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.delivery.optouts import record_opt_out
from smsdash.extensions import db
from smsdash.models import Contact, Delivery, Group, Message
from tests.conftest import csrf_token_from


def _token(client: FlaskClient) -> str:
    return csrf_token_from(client.get("/messages/new").get_data(as_text=True))


def _people(app: Flask) -> tuple[int, int, int]:
    """Contacts Ada and Bob in group Staff, plus Cy (opted out); returns (ada, staff, cy) ids."""
    with app.app_context():
        ada, bob = Contact(name="Ada", phone="+14155550101"), Contact(name="Bob", phone="+14155550102")
        cy = Contact(name="Cy", phone="+14155550103")
        staff = Group(name="Staff", contacts=[ada, bob])
        db.session.add_all([ada, bob, cy, staff])
        record_opt_out(cy.phone, "", "test")
        db.session.commit()
        return ada.id, staff.id, cy.id


def _deliveries(app: Flask) -> list[tuple[str, str, int | None]]:
    with app.app_context():
        return [
            (d.to_number, d.status, d.contact_id) for d in db.session.scalars(select(Delivery).order_by(Delivery.id))
        ]


def test_compose_page_has_labelled_fields_and_counter(logged_in: FlaskClient) -> None:
    html = logged_in.get("/messages/new").get_data(as_text=True)
    assert '<label for="recipients">Recipients</label>' in html
    assert '<label for="body">Message</label>' in html
    assert 'hx-trigger="input changed delay:150ms"' in html and 'id="segment-counter"' in html


def test_send_creates_the_message_and_redirects(app: Flask, logged_in: FlaskClient) -> None:
    ada, staff, cy = _people(app)
    response = logged_in.post(
        "/messages/new",
        data={
            "recipients": "(415) 555-0104\n+1 415 555 0101, 415.555.0104",
            "contact_ids": [str(ada), str(cy)],
            "group_ids": [str(staff)],
            "body": "Hello",
            "csrf_token": _token(logged_in),
        },
    )
    assert response.status_code == 302
    with app.app_context():
        message = db.session.scalars(select(Message)).one()
        assert message.body == "Hello"
    assert response.headers["Location"].endswith(f"/messages/{message.id}")
    assert sorted(_deliveries(app)) == [
        ("+14155550101", "queued", ada),
        ("+14155550102", "queued", ada + 1),
        ("+14155550103", "canceled", cy),
        ("+14155550104", "queued", None),
    ]


def test_bad_input_names_each_bad_number_and_keeps_everything(app: Flask, logged_in: FlaskClient) -> None:
    ada, _, _ = _people(app)
    response = logged_in.post(
        "/messages/new",
        data={
            "recipients": "12ab, +14155550104, 555",
            "contact_ids": [str(ada)],
            "body": "Keep me €",
            "csrf_token": _token(logged_in),
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "12ab: not a phone number" in html and "555: " in html
    assert "12ab, +14155550104, 555</textarea>" in html and "Keep me €</textarea>" in html
    assert f'name="contact_ids" value="{ada}" checked' in html
    assert _deliveries(app) == []


def test_empty_form_and_too_long_body(app: Flask, logged_in: FlaskClient) -> None:
    token = _token(logged_in)
    empty = logged_in.post("/messages/new", data={"recipients": "", "body": "  ", "csrf_token": token})
    html = empty.get_data(as_text=True)
    assert empty.status_code == 422
    assert "Add at least one recipient" in html and "The message is empty: write the text to send." in html
    long = logged_in.post("/messages/new", data={"recipients": "+14155550104", "body": "a" * 1601, "csrf_token": token})
    assert long.status_code == 422 and "1601 characters long; Twilio accepts at most 1600" in long.get_data(
        as_text=True
    )
    assert _deliveries(app) == []


def test_everyone_opted_out_is_refused(app: Flask, logged_in: FlaskClient) -> None:
    _people(app)
    response = logged_in.post(
        "/messages/new", data={"recipients": "+14155550103", "body": "Hi", "csrf_token": _token(logged_in)}
    )
    assert response.status_code == 422
    assert "opted out" in response.get_data(as_text=True)


def test_send_without_csrf_token_is_refused(app: Flask, logged_in: FlaskClient) -> None:
    response = logged_in.post("/messages/new", data={"recipients": "+14155550104", "body": "Hi"})
    assert response.status_code == 400
    assert _deliveries(app) == []


def test_large_send_asks_for_confirmation(app: Flask, logged_in: FlaskClient) -> None:
    app.config["LARGE_SEND_CONFIRM_THRESHOLD"] = 3
    token = _token(logged_in)
    data = {"recipients": "+14155550104, +14155550105, +14155550106", "body": "Hi", "csrf_token": token}
    ask = logged_in.post("/messages/new", data=data)
    html = ask.get_data(as_text=True)
    assert ask.status_code == 200 and "Send to 3 recipients?" in html
    assert 'name="confirm_count" value="3"' in html and _deliveries(app) == []
    stale = logged_in.post(
        "/messages/new", data={**data, "recipients": data["recipients"] + ", +14155550107", "confirm_count": "3"}
    )
    assert "Send to 4 recipients?" in stale.get_data(as_text=True)  # the list changed: ask again
    sent = logged_in.post("/messages/new", data={**data, "confirm_count": "3"})
    assert sent.status_code == 302 and len(_deliveries(app)) == 3


def test_live_segment_counter_fragment(logged_in: FlaskClient) -> None:
    token = _token(logged_in)
    gsm = logged_in.post(
        "/messages/new/segments", data={"body": "a" * 161, "csrf_token": token}, headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert "<strong>161</strong> characters" in gsm and "<strong>2</strong> segments" in gsm and "GSM-7" in gsm
    ucs = logged_in.post("/messages/new/segments", data={"body": "Hi 😀", "csrf_token": token}).get_data(as_text=True)
    assert "UCS-2" in ucs and '<code class="char">😀</code>' in ucs


def test_live_recipient_summary(app: Flask, logged_in: FlaskClient) -> None:
    _, staff, cy = _people(app)
    html = logged_in.post(
        "/messages/new/summary",
        data={
            "recipients": "+14155550101, bad1",
            "group_ids": [str(staff)],
            "contact_ids": [str(cy)],
            "csrf_token": _token(logged_in),
        },
    ).get_data(as_text=True)
    assert "<strong>2</strong> recipients" in html and "1 duplicate removed" in html
    assert "1 opted out" in html and "+14155550103" in html and "bad1" in html


def test_contact_and_group_picker(app: Flask, logged_in: FlaskClient) -> None:
    ada, staff, _ = _people(app)
    html = logged_in.get("/messages/new/pick?pick_q=sta").get_data(as_text=True)
    assert f'name="group_ids" value="{staff}">' in html and "Staff (2)" in html
    chosen = logged_in.get(f"/messages/new/pick?pick_q=bob&contact_ids={ada}").get_data(as_text=True)
    assert f'name="contact_ids" value="{ada}" checked' in chosen and "Bob" in chosen
    assert "No contact or group matches" in logged_in.get("/messages/new/pick?pick_q=zzz").get_data(as_text=True)
