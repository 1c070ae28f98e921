"""Personalised compose: the page's live preview, counter and refusals, the message page and
export showing each text, and `sms send` rendering from contacts."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from smsdash.compose.service import ComposeRefused, Recipient, compose_message
from smsdash.extensions import db
from smsdash.models import Contact, ContactField, Delivery, Message
from tests.conftest import csrf_token_from

ADA, BOB, TYPED = "+14155550101", "+14155550102", "+14155550109"


def _contacts(app: Flask) -> tuple[int, int]:
    with app.app_context():
        ada = Contact(name="Ada Lovelace", phone=ADA, fields=[ContactField(name="site", value="Leeds")])
        bob = Contact(name="Bob", phone=BOB)
        db.session.add_all([ada, bob])
        db.session.commit()
        return ada.id, bob.id


def _form(client: FlaskClient, body: str, ids: tuple[int, ...], typed: str = "") -> dict[str, object]:
    token = csrf_token_from(client.get("/messages/new").get_data(as_text=True))
    return {"recipients": typed, "contact_ids": [str(i) for i in ids], "body": body, "csrf_token": token}


def test_preview_shows_each_recipients_text_and_the_longest_count(app: Flask, logged_in: FlaskClient) -> None:
    ids = _contacts(app)
    data = _form(logged_in, "Hi {{first_name|there}} at {{site|the depot}}", ids, TYPED)
    html = logged_in.post("/messages/new/segments", data=data).get_data(as_text=True)
    assert "Hi Ada at Leeds" in html and "Hi Bob at the depot" in html and "Hi there at the depot" in html
    assert 'id="preview" class="preview" aria-live="polite" hx-swap-oob="true"' in html
    assert "Longest text, for <strong>+14155550109</strong>" in html  # "Hi there at the depot"
    assert "costs <strong>3</strong> segments in all" in html
    one = logged_in.post("/messages/new/segments", data={**data, "preview_for": "555 0109"}).get_data(as_text=True)
    assert "Hi there at the depot" in one and "Hi Ada" not in one


def test_summary_brings_the_counter_and_preview_along(app: Flask, logged_in: FlaskClient) -> None:
    ids = _contacts(app)
    html = logged_in.post("/messages/new/summary", data=_form(logged_in, "Hi {{name}}", ids)).get_data(as_text=True)
    assert "2</strong> recipients" in html and "Hi Ada Lovelace" in html
    assert 'id="segment-counter" class="counter" aria-live="polite" hx-swap-oob="true"' in html


def test_send_is_refused_while_a_recipient_misses_a_field_without_fallback(app: Flask, logged_in: FlaskClient) -> None:
    ids = _contacts(app)
    data = _form(logged_in, "Your shift at {{site}}", ids, TYPED)
    preview = logged_in.post("/messages/new/segments", data=data).get_data(as_text=True)
    assert "2 recipients have no site: +14155550109, Bob" in preview
    response = logged_in.post("/messages/new", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "2 recipients have no site: +14155550109, Bob. Add a fallback" in html
    assert "Your shift at {{site}}</textarea>" in html  # nothing typed is lost
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message)) == 0
    data["body"] = "Your shift at {{site | the depot}}"
    assert logged_in.post("/messages/new", data=data).status_code == 302


def test_a_syntax_error_is_shown_with_its_position_and_not_sent(app: Flask, logged_in: FlaskClient) -> None:
    ids = _contacts(app)
    data = _form(logged_in, "Hi {{first_name", ids)
    assert "line 1, column 4" in logged_in.post("/messages/new/segments", data=data).get_data(as_text=True)
    response = logged_in.post("/messages/new", data=data)
    assert response.status_code == 422 and "Placeholder error at line 1, column 4" in response.get_data(as_text=True)


def test_a_text_rendered_past_1600_characters_is_refused_for_that_recipient(app: Flask) -> None:
    _contacts(app)
    with app.app_context():
        db.session.add(ContactField(contact_id=1, name="note", value="x" * 1600))
        db.session.commit()
        with pytest.raises(ComposeRefused) as refused:
            compose_message("Note: {{note|none}}", [Recipient(ADA), Recipient(BOB)], author_id=None)
        assert refused.value.problems == [
            "1 recipient’s text would be longer than the 1600 characters Twilio accepts: Ada Lovelace (1606 characters)."
        ]
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_message_page_timeline_and_export_show_each_text(app: Flask, logged_in: FlaskClient) -> None:
    ids = _contacts(app)
    response = logged_in.post("/messages/new", data=_form(logged_in, "Hi {{first_name|there}}", ids, TYPED))
    page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "Hi {{first_name|there}}</blockquote>" in page
    for text in ("Hi Ada", "Hi Bob", "Hi there"):
        assert f'<span class="delivery-body">{text}</span>' in page
    with app.app_context():
        message_id, first = db.session.execute(select(Delivery.message_id, Delivery.id).order_by(Delivery.id)).first()
    timeline = logged_in.get(f"/messages/{message_id}/deliveries/{first}/timeline").get_data(as_text=True)
    assert "Text sent:</strong>" in timeline
    rows = list(csv.DictReader(io.StringIO(logged_in.get(f"/messages/{message_id}/deliveries.csv").get_data(True))))
    assert sorted(r["body"] for r in rows) == ["Hi Ada", "Hi Bob", "Hi there"]


def test_a_plain_message_shows_no_per_recipient_text(app: Flask, logged_in: FlaskClient) -> None:
    ids = _contacts(app)
    response = logged_in.post("/messages/new", data=_form(logged_in, "Same for all", ids))
    assert 'class="delivery-body"' not in logged_in.get(response.headers["Location"]).get_data(as_text=True)


def test_cli_send_renders_from_the_matching_contact(app: Flask, runner: object) -> None:
    _contacts(app)
    result = runner.invoke(args=["sms", "send", "--to", ADA, "--to", TYPED, "--body", "Hi {{first_name|there}}"])  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert dict(db.session.execute(select(Delivery.to_number, Delivery.body)).all()) == {
            ADA: "Hi Ada",
            TYPED: "Hi there",
        }


def test_cli_send_refuses_what_the_page_refuses(app: Flask, runner: object) -> None:
    _contacts(app)
    result = runner.invoke(args=["sms", "send", "--to", ADA, "--to", BOB, "--body", "At {{site}}"])  # type: ignore[attr-defined]
    assert result.exit_code != 0
    assert result.exit_code == 2 and "Invalid value for --body: 1 recipient has no site: Bob." in result.output
    bad = runner.invoke(args=["sms", "send", "--to", ADA, "--body", "At {site}"])  # type: ignore[attr-defined]
    assert bad.exit_code != 0 and "line 1, column 4" in bad.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message)) == 0


def test_the_page_refuses_a_text_rendered_past_1600_characters_naming_the_recipient(
    app: Flask, logged_in: FlaskClient
) -> None:
    ids = _contacts(app)
    with app.app_context():
        db.session.add(ContactField(contact_id=ids[0], name="note", value="x" * 1600))
        db.session.commit()
    response = logged_in.post("/messages/new", data=_form(logged_in, "Note: {{note|none}}", ids))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "text would be longer than the 1600 characters Twilio accepts: Ada Lovelace (1606 characters)" in html
    assert "Note: {{note|none}}</textarea>" in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message)) == 0
