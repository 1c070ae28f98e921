"""The role x route matrix: every route of the url map, GET and POST, for each role.

The expectations are written out below, one line per endpoint, independent of the app's own
`@requires` marks: a route whose rule changes, or a new route nobody wrote a line for, fails
here. Each request carries a valid session and CSRF token, so a refusal is the role gate's (403,
plain words), never the log-in gate's or CSRF's; an allowed request may still be refused by
its own form (422, 404 for an id already deleted), but never with 403 or a server error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from smsdash.auth.permissions import is_public
from smsdash.auth.roles import REFUSALS, ROLES, Permission, role_can
from smsdash.extensions import db
from smsdash.models import (
    AuditEntry,
    Contact,
    Delivery,
    Group,
    InboundMessage,
    Message,
    MessageTemplate,
    User,
)
from tests.conftest import TEST_PASSWORD, add_operator_row, csrf_token_from, log_in_as

V, S, A = "view", "send", "admin"

# endpoint: (what GET needs, what POST needs)
EXPECTED: dict[str, tuple[Permission, Permission]] = {
    "auth.logout": (V, V),
    "messages.index": (V, V),
    "messages.index_poll": (V, V),
    "messages.show": (V, V),
    "messages.poll": (V, V),
    "messages.timeline": (V, V),
    "messages.export": (V, V),  # viewers may download a message's results: it is reading
    "messages.retry": (S, S),
    "messages.approve_message": (S, S),
    "messages.reject_message": (S, S),
    "messages.scheduled": (V, V),
    "messages.cancel_scheduled": (S, S),
    "messages.edit_scheduled": (S, S),
    "compose.new": (S, S),
    "compose.segments": (S, S),
    "compose.summary": (S, S),
    "compose.pick": (S, S),
    "compose.spreadsheet": (S, S),
    "contacts.index": (V, V),
    "contacts.fields": (V, V),
    "contacts.new": (S, S),
    "contacts.edit": (S, S),
    "contacts.delete_contact": (S, S),
    "contacts.import_csv": (S, S),
    "contacts.groups": (V, S),
    "contacts.group": (V, S),
    "contacts.remove_member": (S, S),
    "contacts.delete_group": (S, S),
    "message_templates.index": (V, V),
    "message_templates.new": (S, S),
    "message_templates.edit": (S, S),
    "message_templates.preview": (S, S),
    "message_templates.duplicate": (S, S),
    "message_templates.archive": (S, S),
    "setup.index": (V, V),
    "setup.checks": (V, V),
    "inbox.index": (V, V),
    "inbox.poll": (V, V),
    "inbox.unread": (V, V),
    "inbox.conversation": (V, V),
    "inbox.thread_poll": (V, V),
    "inbox.reply": (S, S),
    "inbox.media": (V, V),
    "audit_log.index": (A, A),
    "audit_log.export": (A, A),
    "team.index": (A, A),
    "team.role": (A, A),
    "team.deactivate_operator": (A, A),
    "team.reactivate_operator": (A, A),
    "team.new_link": (A, A),
    "account.password": (V, V),  # every operator changes their own password
}

NUMBER = "+15005550006"


def _world(app: Flask) -> dict[str, str]:
    """One of everything a route can name, and the value each URL parameter takes."""
    with app.app_context():
        contact = Contact(name="Ada", phone=NUMBER)
        group = Group(name="Team", contacts=[contact])
        template = MessageTemplate(name="Hello", body="Hello {{name}}")
        message = Message(body="Hi", recipient_count=1)
        db.session.add_all([contact, group, template, message])
        db.session.flush()
        delivery = Delivery(message_id=message.id, to_number=NUMBER, body="Hi", status="delivered")
        db.session.add(delivery)
        db.session.flush()
        colleague = User(email="colleague@example.com", role="sender")
        colleague.set_password(TEST_PASSWORD)
        db.session.add(colleague)
        reply = InboundMessage(message_sid="SM" + "e" * 32, from_number=NUMBER, body="thanks", delivery_id=delivery.id)
        db.session.add(reply)
        db.session.commit()
        return {
            "contact_id": str(contact.id),
            "group_id": str(group.id),
            "template_id": str(template.id),
            "message_id": str(message.id),
            "delivery_id": str(delivery.id),
            "reply_id": str(reply.id),
            "user_id": str(colleague.id),
            "n": "0",
            "number": NUMBER,
        }


def _routes(app: Flask, world: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(endpoint, method, path) for every non-public rule; log-out last, as it ends the session."""
    found = []
    for rule in app.url_map.iter_rules():
        if is_public(rule.endpoint, rule.endpoint.rpartition(".")[0]):
            continue
        missing = set(rule.arguments) - set(world)
        assert not missing, f"{rule.rule}: give the matrix's world a value for {missing}"
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: world[m.group(1)], rule.rule)
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            found.append((rule.endpoint, method, path))
    found.sort(key=lambda r: r[0] == "auth.logout")
    yield from found


def _log_in(client: FlaskClient, app: Flask, role: str) -> str:
    """Log in as a new operator with `role`; returns the session's CSRF token."""
    add_operator_row(app, f"{role}@example.com", role)
    log_in_as(client, f"{role}@example.com")
    return csrf_token_from(client.get("/messages").get_data(as_text=True))


def test_every_route_has_an_expectation_and_it_matches_the_rule(app: Flask) -> None:
    from smsdash.auth.permissions import rule_of

    endpoints = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if not is_public(rule.endpoint, rule.endpoint.rpartition(".")[0])
    }
    assert endpoints == set(EXPECTED), "write a line in EXPECTED for each new route (and drop removed ones)"
    for endpoint, (read, write) in EXPECTED.items():
        assert (rule_of(app, endpoint, "GET"), rule_of(app, endpoint, "POST")) == (read, write), endpoint


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_allowed_and_refused_exactly_as_expected(app: Flask, client: FlaskClient, role: str) -> None:
    world = _world(app)
    token = _log_in(client, app, role)
    refused_posts = 0
    for endpoint, method, path in _routes(app, world):
        needed = EXPECTED[endpoint][0 if method == "GET" else 1]
        data = {"csrf_token": token} if method == "POST" else None
        response = client.open(path, method=method, data=data, headers={"X-CSRFToken": token})
        body = response.get_data(as_text=True)  # read to the end: a streamed export holds its context open
        response.close()
        where = (role, method, path, response.status_code)
        if role_can(role, needed):
            assert response.status_code != 403 and response.status_code < 500, where
        else:
            refused_posts += method == "POST"
            assert response.status_code == 403, where
            assert REFUSALS[needed] in body, where
    with app.app_context():
        denied = db.session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "permission.denied")
        )
    assert denied == refused_posts  # every refused POST is on record, once


def test_a_viewers_forged_post_changes_nothing_and_is_audited(app: Flask, client: FlaskClient) -> None:
    world = _world(app)
    token = _log_in(client, app, "viewer")
    response = client.post(f"/contacts/{world['contact_id']}/delete", data={"csrf_token": token})
    assert response.status_code == 403
    htmx = client.post(
        "/messages/new/segments", data={"body": "x"}, headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    assert htmx.status_code == 403 and htmx.mimetype == "text/plain"
    with app.app_context():
        assert db.session.get(Contact, int(world["contact_id"])) is not None
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "permission.denied")).all()
        assert [(e.actor_label, e.details["path"], e.details["role"]) for e in entries] == [
            ("viewer@example.com", f"/contacts/{world['contact_id']}/delete", "viewer"),
            ("viewer@example.com", "/messages/new/segments", "viewer"),
        ]


def test_a_viewer_sees_no_send_controls(app: Flask, client: FlaskClient) -> None:
    world = _world(app)
    _log_in(client, app, "viewer")
    for path in ("/messages", "/contacts", "/templates", "/groups", f"/groups/{world['group_id']}", f"/inbox/{NUMBER}"):
        page = client.get(path).get_data(as_text=True)
        assert 'href="/messages/new"' not in page, path
        assert "/delete" not in page and "Add a contact" not in page and "Send reply" not in page, path
        assert "New template" not in page and "Create group" not in page, path


def test_a_route_without_a_rule_stops_the_app_from_starting(app: Flask) -> None:
    from smsdash.auth.permissions import check_every_route_has_a_rule

    app.add_url_rule("/unruled", "unruled", lambda: "open")
    with pytest.raises(RuntimeError, match="unruled"):
        check_every_route_has_a_rule(app)
