"""The dashboards' pagination (Flask-SQLAlchemy's db.paginate, smsdash/web/pagination.py): what a
page number the table does not have shows, which queries a page costs, and contact names without
a query per row."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smsdash.extensions import db
from smsdash.models import Contact
from tests.messages.test_views import _message

PAGER = re.compile(r"(\d+)–(\d+) of (\d+) \(page (\d+) of (\d+)\)")


def _pager(html: str) -> tuple[int, ...]:
    found = PAGER.search(html)
    assert found, "the page shows no pager"
    return tuple(int(n) for n in found.groups())


@pytest.fixture
def contacts_61(app: Flask) -> None:
    with app.app_context():
        db.session.add_all([Contact(name=f"Person {i:02d}", phone=f"+1415555{i:04d}") for i in range(61)])
        db.session.commit()


@pytest.mark.usefixtures("contacts_61")
def test_a_page_past_the_end_shows_the_last_page(logged_in: FlaskClient) -> None:
    html = logged_in.get("/contacts?page=9").get_data(as_text=True)
    assert _pager(html) == (51, 61, 61, 2, 2)
    assert "Person 60" in html and 'rel="next"' not in html


@pytest.mark.usefixtures("contacts_61")
@pytest.mark.parametrize("page", ["", "0", "-3", "two", "2.5"])
def test_a_page_that_is_not_a_positive_number_is_page_one(logged_in: FlaskClient, page: str) -> None:
    response = logged_in.get(f"/contacts?page={page}")
    assert response.status_code == 200
    assert _pager(response.get_data(as_text=True)) == (1, 50, 61, 1, 2)


def test_an_empty_table_on_any_page_says_it_is_empty(logged_in: FlaskClient) -> None:
    assert "No contacts yet." in logged_in.get("/contacts?page=3").get_data(as_text=True)
    assert logged_in.get("/messages?page=3").status_code == 200


def test_the_messages_list_clamps_too(app: Flask, logged_in: FlaskClient) -> None:
    for n in range(21):
        _message(app, ["delivered"], body=f"message {n}")
    assert _pager(logged_in.get("/messages?page=5").get_data(as_text=True)) == (21, 21, 21, 2, 2)


def _counts(statements: list[str]) -> list[str]:
    """The statements that count a table's rows (the pager's total), as db.paginate words them."""
    return [s for s in statements if re.match(r"SELECT count\(\*\) AS \w+\s+FROM \(SELECT", s)]


def test_the_message_page_takes_its_total_from_the_rollup_not_a_count(
    app: Flask, logged_in: FlaskClient, statements: list[str]
) -> None:
    """A message can have 10,000+ recipients: without a search, the pager's total is the roll-up's
    (already read for the counters), not a second COUNT over them. A search has no such total."""
    mid, _ = _message(app, ["delivered"] * 55 + ["failed"] * 2)
    statements.clear()
    html = logged_in.get(f"/messages/{mid}?page=2").get_data(as_text=True)
    assert _pager(html) == (51, 57, 57, 2, 2)
    assert _counts(statements) == []
    statements.clear()
    html = logged_in.get(f"/messages/{mid}?status=delivered&page=2").get_data(as_text=True)
    assert _pager(html) == (51, 55, 55, 2, 2)
    assert _counts(statements) == []
    statements.clear()
    html = logged_in.get(f"/messages/{mid}?q=415&page=7").get_data(as_text=True)
    assert _pager(html) == (51, 57, 57, 2, 2)
    assert len(_counts(statements)) == 1


def test_contact_names_come_with_the_page_not_a_query_per_row(
    app: Flask, logged_in: FlaskClient, statements: list[str]
) -> None:
    mid, ids = _message(app, ["sent"] * 3)
    with app.app_context():
        for i, delivery_id in enumerate(ids[1:], start=1):
            contact = Contact(name=f"Contact {i}", phone=f"+1415555{i:04d}")
            db.session.add(contact)
            db.session.flush()
            db.session.execute(
                db.text("UPDATE comms_deliveries SET contact_id = :c WHERE id = :d"),
                {"c": contact.id, "d": delivery_id},
            )
        db.session.commit()
    db.session.remove()
    statements.clear()
    html = logged_in.get(f"/messages/{mid}").get_data(as_text=True)
    assert all(name in html for name in ("Ada Lovelace", "Contact 1", "Contact 2"))
    assert len([s for s in statements if "contacts" in s]) == 1, statements
