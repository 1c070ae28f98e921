"""The audit page and its CSV: admin only, newest first, filtered by who, what, when and target."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import time_machine
from flask import Flask
from flask.testing import FlaskClient

from smsdash.audit.record import record
from smsdash.extensions import db
from smsdash.models import Message, User
from tests.audit.helpers import TEST_CLIENT_ADDRESS, entries_for, only_entry
from tests.conftest import add_operator_row, csrf_token_from, log_in_as

MARCH_1 = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
MARCH_2 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
MARCH_3 = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def _write(app: Flask, at: datetime, action: str, actor: User | None = None, **kwargs: object) -> None:
    with app.app_context(), time_machine.travel(at, tick=False):
        record(action, actor=db.session.get(User, actor.id) if actor else None, **kwargs)  # type: ignore[arg-type]
        db.session.commit()


def _rows(html: str) -> list[str]:
    """Each table row's action name, in the order shown."""
    return re.findall(r'<span class="muted mono">([a-z_.]+)</span>', html)


def _page(client: FlaskClient, query: str = "") -> str:
    response = client.get(f"/audit{query}")
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_the_page_lists_entries_newest_first_with_who_what_target_and_details(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    _write(app, MARCH_1, "contact.create", operator, target_type="contact", target_id=7, details={"name": "Ada"})
    _write(app, MARCH_3, "message.cancel", operator, target_type="message", target_id=12, details={"deliveries": 3})
    html = _page(logged_in)
    assert _rows(html) == ["login.success", "message.cancel", "contact.create"]  # the log-in is today
    assert "<caption" in html and '<th scope="col">Who</th>' in html
    assert "2026-03-03 12:00:00" in html and "Canceled a scheduled message" in html
    assert '<a href="/messages/12">message #12</a>' in html and "contact #7" in html
    assert "deliveries: 3" in html and "name: Ada" in html
    for control in ("audit-actor", "audit-action", "audit-since", "audit-until"):
        assert f'<label for="{control}">' in html and f'id="{control}"' in html


def test_filters_by_operator_command_line_and_no_operator(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    other = add_operator_row(app, "other@example.com", "sender")
    _write(app, MARCH_1, "contact.create", other)
    _write(app, MARCH_1, "optout.add", label="twilio")
    _write(app, MARCH_1, "template.create", label="cli:deploy")
    assert _rows(_page(logged_in, f"?actor={other.id}")) == ["contact.create"]
    assert _rows(_page(logged_in, "?actor=cli")) == ["template.create"]
    assert _rows(_page(logged_in, "?actor=none")) == ["optout.add"]
    assert _rows(_page(logged_in, f"?actor={operator.id}")) == ["login.success"]
    assert f'<option value="{other.id}">other@example.com</option>' in _page(logged_in)


def test_filters_by_action_and_by_inclusive_utc_dates(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    _write(app, MARCH_1, "contact.create", operator)
    _write(app, MARCH_2, "contact.edit", operator)
    _write(app, MARCH_3, "contact.delete", operator)
    assert _rows(_page(logged_in, "?action=contact.edit")) == ["contact.edit"]
    assert _rows(_page(logged_in, "?since=2026-03-02&until=2026-03-02")) == ["contact.edit"]
    assert _rows(_page(logged_in, "?until=2026-03-01")) == ["contact.create"]  # 23:59 on the 1st is in
    assert _rows(_page(logged_in, "?since=2026-03-02&until=2026-03-03")) == ["contact.delete", "contact.edit"]
    html = _page(logged_in, "?action=contact.edit")
    assert '<option value="contact.edit" selected>Edited a contact (contact.edit)</option>' in html


def test_a_bad_date_is_explained_not_a_server_error(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    _write(app, MARCH_1, "contact.create", operator)
    response = logged_in.get("/audit?since=1st+of+March&target_id=abc&action=nonsense")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "The from date &#39;1st of March&#39; is not a date: use YYYY-MM-DD" in html
    assert "The target id &#39;abc&#39; is not a number." in html
    assert "&#39;nonsense&#39; is not an action the audit log records." in html
    assert "contact.create" in _rows(html)  # what could not be read filters nothing


def test_target_filter_is_what_the_message_page_links_to(app: Flask, logged_in: FlaskClient, operator: User) -> None:
    with app.app_context():
        message = Message(body="Hello", recipient_count=0)
        db.session.add(message)
        db.session.commit()
        message_id = message.id
    _write(app, MARCH_1, "message.cancel", operator, target_type="message", target_id=message_id)
    _write(app, MARCH_1, "message.cancel", operator, target_type="message", target_id=message_id + 1)
    _write(app, MARCH_1, "contact.delete", operator, target_type="contact", target_id=message_id)
    link = f"/audit?target_type=message&amp;target_id={message_id}"
    show = logged_in.get(f"/messages/{message_id}").get_data(as_text=True)
    assert f'href="{link}">Audit log for this message</a>' in show
    html = _page(logged_in, f"?target_type=message&target_id={message_id}")
    assert _rows(html) == ["message.cancel"] and f"message #{message_id}</a>" in html
    assert f'name="target_id" value="{message_id}"' in html  # the filter form keeps the target


def test_the_csv_has_the_filtered_entries_with_formula_safe_cells(
    app: Flask, logged_in: FlaskClient, operator: User
) -> None:
    _write(app, MARCH_1, "contact.create", operator, target_type="contact", target_id=3, details={"name": "Ada"})
    _write(app, MARCH_2, "contact.edit", operator, target_type="contact", target_id=3, details={"changed": ["name"]})
    _write(app, MARCH_3, "group.create", operator, target_type="group", target_id=1)
    response = logged_in.get("/audit.csv?until=2026-03-02&actor=" + str(operator.id))
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["action"], r["occurred_at"]) for r in rows] == [
        ("contact.edit", MARCH_2.isoformat()),
        ("contact.create", MARCH_1.isoformat()),
    ]
    assert rows[1]["details"] == "name: Ada" and rows[0]["id"].isdigit()
    assert {k: v for k, v in rows[0].items() if k != "id"} == {
        "occurred_at": MARCH_2.isoformat(),
        "actor": "op@example.com",
        "action": "contact.edit",
        "action_words": "Edited a contact",
        "target_type": "contact",
        "target_id": "3",
        "address": TEST_CLIENT_ADDRESS,
        "details": "changed: name",
    }
    _write(app, MARCH_1, "contact.delete", label="=cmd|' /C calc'!A0")  # a label from outside could be anything
    [row] = csv.DictReader(io.StringIO(logged_in.get("/audit.csv?action=contact.delete").get_data(as_text=True)))
    assert row["actor"] == "'=cmd|' /C calc'!A0"
    page_link = f'href="/audit.csv?actor={operator.id}&amp;until=2026-03-02"'
    assert page_link in _page(logged_in, f"?actor={operator.id}&until=2026-03-02")


def test_only_an_admin_sees_the_audit_log(app: Flask, client: FlaskClient) -> None:
    for email, role in (("sender@example.com", "sender"), ("viewer@example.com", "viewer")):
        add_operator_row(app, email, role)
        log_in_as(client, email)
        for url in ("/audit", "/audit.csv"):
            response = client.get(url)
            assert response.status_code == 403 and "Only an admin can do this." in response.get_data(as_text=True)
        with app.app_context():
            message = Message(body="Hello", recipient_count=0)
            db.session.add(message)
            db.session.commit()
            message_id = message.id
        assert "Audit log for this message" not in client.get(f"/messages/{message_id}").get_data(as_text=True)
        client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/contacts").get_data(as_text=True))})


def test_a_viewers_forged_post_is_refused_and_audited(app: Flask, client: FlaskClient) -> None:
    viewer = add_operator_row(app, "viewer@example.com", "viewer")
    log_in_as(client, viewer.email)
    token = csrf_token_from(client.get("/contacts").get_data(as_text=True))
    response = client.post("/contacts/new", data={"name": "Ada", "phone": "+14155550101", "csrf_token": token})
    assert response.status_code == 403
    entry = only_entry(app, "permission.denied")
    assert (entry.actor_id, entry.actor_label, entry.address) == (viewer.id, viewer.email, TEST_CLIENT_ADDRESS)
    assert entry.details == {"method": "POST", "path": "/contacts/new", "role": "viewer", "needed": "send"}
    assert entries_for(app, "contact.create") == []
