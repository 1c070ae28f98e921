"""Saved templates: create, edit, duplicate, archive; use on compose; a message keeps the body it
was sent with after its template is edited."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import Contact, Delivery, Message, MessageTemplate
from tests.conftest import csrf_token_from

BODY = "Hi {{first_name|there}}, see you at {{site|the depot}}"


def _token(client: FlaskClient, path: str = "/templates/new") -> str:
    return csrf_token_from(client.get(path).get_data(as_text=True))


def _create(client: FlaskClient, name: str = "Shift", body: str = BODY):  # type: ignore[no-untyped-def]
    return client.post("/templates/new", data={"name": name, "body": body, "csrf_token": _token(client)})


def test_create_lists_and_previews_a_template(app: Flask, logged_in: FlaskClient) -> None:
    with app.app_context():
        db.session.add(Contact(name="Ada Lovelace", phone="+14155550101"))
        db.session.commit()
    assert _create(logged_in).status_code == 302
    listing = logged_in.get("/templates").get_data(as_text=True)
    assert "Shift" in listing and "/messages/new?template=1" in listing
    preview = logged_in.post("/templates/preview", data={"body": BODY, "csrf_token": _token(logged_in)})
    assert "Hi Ada, see you at the depot" in preview.get_data(as_text=True)


def test_bad_syntax_and_duplicate_names_are_refused_keeping_the_text(app: Flask, logged_in: FlaskClient) -> None:
    _create(logged_in)
    response = _create(logged_in, "Other", "Hi {{first_name")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "line 1, column 4" in html and "Hi {{first_name</textarea>" in html
    assert "already exists" in _create(logged_in, "Shift", "x").get_data(as_text=True)


def test_editing_a_template_changes_no_sent_message(app: Flask, logged_in: FlaskClient) -> None:
    _create(logged_in)
    page = logged_in.get("/messages/new?template=1").get_data(as_text=True)
    assert f"{BODY}</textarea>" in page and 'name="template_id" type="hidden" value="1"' in page
    sent = logged_in.post(
        "/messages/new",
        data={"recipients": "+14155550109", "body": BODY, "template_id": "1", "csrf_token": csrf_token_from(page)},
    )
    assert sent.status_code == 302
    edit = logged_in.post(
        "/templates/1/edit", data={"name": "Shift", "body": "Changed {{name}}", "csrf_token": _token(logged_in)}
    )
    assert edit.status_code == 302
    with app.app_context():
        message = db.session.scalars(select(Message)).one()
        assert (message.body, message.template_id) == (BODY, 1)
        assert db.session.scalars(select(Delivery.body)).one() == "Hi there, see you at the depot"
        assert db.session.get(MessageTemplate, 1).body == "Changed {{name}}"
    assert "From the template “Shift” as it was then." in logged_in.get(sent.headers["Location"]).get_data(True)


def test_duplicate_and_archive(app: Flask, logged_in: FlaskClient) -> None:
    _create(logged_in)
    copy = logged_in.post("/templates/1/duplicate", data={"csrf_token": _token(logged_in)})
    assert copy.status_code == 302 and copy.headers["Location"].endswith("/templates/2/edit")
    logged_in.post("/templates/1/duplicate", data={"csrf_token": _token(logged_in)})
    logged_in.post("/templates/1/archive", data={"csrf_token": _token(logged_in)})
    with app.app_context():
        names = dict(db.session.execute(select(MessageTemplate.name, MessageTemplate.archived_at)).all())
    assert set(names) == {"Shift", "Shift (copy)", "Shift (copy 2)"} and names["Shift"] is not None
    listing = logged_in.get("/templates").get_data(as_text=True)
    assert ">Shift</a>" not in listing and "Shift (copy)" in listing
    assert ">Shift</a>" in logged_in.get("/templates?archived=1").get_data(as_text=True)
    compose = logged_in.get("/messages/new?template=1").get_data(as_text=True)
    assert f"{BODY}</textarea>" not in compose  # an archived template is not offered or used
