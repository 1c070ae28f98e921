"""Contact fields: kept from every extra CSV column (headers in lower_snake_case), edited on the
contact form, and counted on the field list."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import Contact
from tests.conftest import csrf_token_from
from tests.contacts.test_views import _import


def _fields(app: Flask) -> dict[str, dict[str, str]]:
    with app.app_context():
        return {c.phone: c.field_values() for c in db.session.scalars(select(Contact))}


def test_csv_import_keeps_every_extra_column_as_a_field(app: Flask, logged_in: FlaskClient) -> None:
    content = (
        b"Site,Phone Number,Full Name,First Name,Shift-start (UTC),,2nd\n"
        b"Leeds,+14155550101,Ada Lovelace,Countess,09:00,x,y\n"
        b"York,+14155550102,Bob Smith,,10:00,,\n"
    )
    response = _import(logged_in, content)
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "2 added" in html and "<code>shift_start_utc</code>" in html
    assert _fields(app) == {
        "+14155550101": {"site": "Leeds", "first_name": "Countess", "shift_start_utc": "09:00"},
        "+14155550102": {"site": "York", "shift_start_utc": "10:00"},  # a blank cell sets nothing
    }
    with app.app_context():
        assert db.session.scalar(select(Contact.name).where(Contact.phone == "+14155550101")) == "Ada Lovelace"


def test_reimport_updates_a_field_and_keeps_the_others(app: Flask, logged_in: FlaskClient) -> None:
    _import(logged_in, b"name,phone,site,team\nAda,+14155550101,Leeds,Blue\n")
    html = _import(logged_in, b"name,phone,site\nAda,+14155550101,York\n").get_data(as_text=True)
    assert "0 added, 1 updated" in html
    assert _fields(app) == {"+14155550101": {"site": "York", "team": "Blue"}}


def test_contact_form_edits_fields(app: Flask, logged_in: FlaskClient) -> None:
    _import(logged_in, b"name,phone,site\nAda,+14155550101,Leeds\n")
    page = logged_in.get("/contacts/1/edit").get_data(as_text=True)
    assert "site: Leeds</textarea>" in page
    data = {
        "name": "Ada",
        "phone": "+14155550101",
        "fields": "Site: York\nShift Time: 9am",
        "csrf_token": csrf_token_from(page),
    }
    assert logged_in.post("/contacts/1/edit", data=data).status_code == 302
    assert _fields(app) == {"+14155550101": {"site": "York", "shift_time": "9am"}}
    bad = logged_in.post("/contacts/1/edit", data={**data, "fields": "no colon here\nphone: 1"})
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "Line 1: write each field as “name: value”." in html and "Line 2: “phone” is the contact" in html


def test_field_list_counts_contacts_per_field(app: Flask, logged_in: FlaskClient) -> None:
    _import(logged_in, b"name,phone,site,team\nAda,+14155550101,Leeds,Blue\nBob,+14155550102,York,\n")
    html = logged_in.get("/contacts/fields").get_data(as_text=True)
    assert "<td>site</td><td><code>{{site}}</code></td><td>2 of 2</td>" in html
    assert "<td>team</td><td><code>{{team}}</code></td><td>1 of 2</td>" in html
