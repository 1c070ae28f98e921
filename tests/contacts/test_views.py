"""Contacts and groups: CRUD, search, membership, CSV import, opt-out display, and bad input."""

from __future__ import annotations

import io

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, select

from smsdash.delivery.optouts import record_opt_out
from smsdash.extensions import db
from smsdash.models import NAME_MAX_LENGTH, Contact, Group
from tests.conftest import csrf_token_from


def _token(client: FlaskClient, path: str = "/contacts/new") -> str:
    return csrf_token_from(client.get(path).get_data(as_text=True))


def _add(app: Flask, name: str, phone: str, *groups: str) -> int:
    with app.app_context():
        contact = Contact(name=name, phone=phone)
        for group_name in groups:
            group = db.session.scalar(select(Group).where(Group.name == group_name)) or Group(name=group_name)
            contact.groups.append(group)
        db.session.add(contact)
        db.session.commit()
        return contact.id


def _contacts(app: Flask) -> dict[str, str]:
    with app.app_context():
        return {c.phone: c.name for c in db.session.scalars(select(Contact))}


def test_add_contact_normalises_the_number(app: Flask, logged_in: FlaskClient) -> None:
    response = logged_in.post(
        "/contacts/new", data={"name": " Ada ", "phone": "(415) 555-0101", "csrf_token": _token(logged_in)}
    )
    assert response.status_code == 302
    assert _contacts(app) == {"+14155550101": "Ada"}


def test_add_contact_bad_input_keeps_what_was_typed(app: Flask, logged_in: FlaskClient) -> None:
    response = logged_in.post("/contacts/new", data={"name": "", "phone": "12ab", "csrf_token": _token(logged_in)})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Enter a name." in html
    assert "12ab is" in html and 'value="12ab"' in html
    assert _contacts(app) == {}


def test_add_contact_duplicate_number_names_the_owner(app: Flask, logged_in: FlaskClient) -> None:
    _add(app, "Ada", "+14155550101")
    response = logged_in.post(
        "/contacts/new", data={"name": "Bob", "phone": "415-555-0101", "csrf_token": _token(logged_in)}
    )
    assert response.status_code == 422
    assert "+14155550101 already belongs to Ada." in response.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(app: Flask, logged_in: FlaskClient) -> None:
    response = logged_in.post("/contacts/new", data={"name": "Ada", "phone": "+14155550101"})
    assert response.status_code == 400
    assert _contacts(app) == {}


def test_edit_contact_and_its_groups(app: Flask, logged_in: FlaskClient) -> None:
    contact_id = _add(app, "Ada", "+14155550101", "Staff")
    with app.app_context():
        volunteers = Group(name="Volunteers")
        db.session.add(volunteers)
        db.session.commit()
        volunteers_id = volunteers.id
    page = logged_in.get(f"/contacts/{contact_id}/edit").get_data(as_text=True)
    assert 'value="Ada"' in page and "checked" in page
    response = logged_in.post(
        f"/contacts/{contact_id}/edit",
        data={
            "name": "Ada L",
            "phone": "+1 415 555 0102",
            "groups": [str(volunteers_id)],
            "csrf_token": csrf_token_from(page),
        },
    )
    assert response.status_code == 302
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert (contact.name, contact.phone, [g.name for g in contact.groups]) == (
            "Ada L",
            "+14155550102",
            ["Volunteers"],
        )


def test_edit_contact_bad_input(app: Flask, logged_in: FlaskClient) -> None:
    contact_id = _add(app, "Ada", "+14155550101")
    _add(app, "Bob", "+14155550102")
    token = _token(logged_in, f"/contacts/{contact_id}/edit")
    response = logged_in.post(
        f"/contacts/{contact_id}/edit", data={"name": "x" * 201, "phone": "+14155550102", "csrf_token": token}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "200 characters" in html and "already belongs to Bob" in html
    assert logged_in.get("/contacts/99999/edit").status_code == 404


def test_delete_contact(app: Flask, logged_in: FlaskClient) -> None:
    contact_id = _add(app, "Ada", "+14155550101")
    token = _token(logged_in, "/contacts")
    assert logged_in.post(f"/contacts/{contact_id}/delete").status_code == 400  # no token
    assert logged_in.post(f"/contacts/{contact_id}/delete", data={"csrf_token": token}).status_code == 302
    assert _contacts(app) == {}


def test_list_is_searchable_paginated_and_shows_opt_outs(app: Flask, logged_in: FlaskClient) -> None:
    with app.app_context():
        db.session.add_all([Contact(name=f"Person {i:02d}", phone=f"+1415555{i:04d}") for i in range(60)])
        db.session.add(Contact(name="Zed Quiet", phone="+14155559999"))
        record_opt_out("+14155559999", "", "test")
        db.session.commit()
    first = logged_in.get("/contacts").get_data(as_text=True)
    assert "Person 00" in first and "Person 55" not in first and "of 61" in first
    second = logged_in.get("/contacts?page=2").get_data(as_text=True)
    assert "Person 55" in second and "opted out" in second
    found = logged_in.get("/contacts?q=quiet").get_data(as_text=True)
    assert "Zed Quiet" in found and "Person 01" not in found
    fragment = logged_in.get(
        "/contacts?q=(415)%20555-0042", headers={"HX-Request": "true", "HX-Target": "contact-rows"}
    )
    assert "HX-Request" in fragment.headers["Vary"] and fragment.mimetype == "text/html"
    by_digits = fragment.get_data(as_text=True)
    assert "Person 42" in by_digits and "<html" not in by_digits
    restore = logged_in.get("/contacts", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)
    assert "No contact matches" in logged_in.get("/contacts?q=nobody").get_data(as_text=True)


def _import(client: FlaskClient, content: bytes, filename: str = "contacts.csv"):  # type: ignore[no-untyped-def]
    token = _token(client, "/contacts/import")
    return client.post(
        "/contacts/import",
        data={"csrf_token": token, "file": (io.BytesIO(content), filename)},
        content_type="multipart/form-data",
    )


def test_csv_import_keeps_good_rows_and_reports_bad_lines(app: Flask, logged_in: FlaskClient) -> None:
    _add(app, "Old Name", "+14155550103")
    content = (
        b"name,phone\n"
        b"Ada,(415) 555-0101\n"  # line 2: good
        b"Bob,not a number\n"  # line 3: bad number
        b",+14155550102\n"  # line 4: no name
        b"Cy,+1 415 555 0103\n"  # line 5: updates Old Name
        b"Ada again,4155550101\n"  # line 6: duplicate of line 2
        b"lonely\n"  # line 7: one column
        b"\n"
        b"Dee,+44 20 7946 0958\n"  # line 9: good, UK
    )
    response = _import(logged_in, content)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "2 added, 1 updated, 0 unchanged, 4 rejected" in html
    for line in ("<td>3</td>", "<td>4</td>", "<td>6</td>", "<td>7</td>"):
        assert line in html
    assert "already on line 2" in html
    assert _contacts(app) == {"+14155550101": "Ada", "+14155550103": "Cy", "+442079460958": "Dee"}


def test_csv_import_without_header(app: Flask, logged_in: FlaskClient) -> None:
    response = _import(logged_in, b"Ada,+14155550101\r\nBob,+14155550102\r\n")
    assert response.status_code == 200
    assert len(_contacts(app)) == 2


def test_csv_import_bad_files(app: Flask, logged_in: FlaskClient) -> None:
    assert "Choose a CSV file." in logged_in.post(
        "/contacts/import", data={"csrf_token": _token(logged_in, "/contacts/import")}
    ).get_data(as_text=True)
    assert "Upload a .csv file." in _import(logged_in, b"x", "contacts.xlsx").get_data(as_text=True)
    assert "not UTF-8" in _import(logged_in, "Zoë,+14155550101".encode("utf-16")).get_data(as_text=True)
    assert _contacts(app) == {}


def test_one_name_limit_sizes_the_columns_and_bounds_both_forms_and_the_import(
    app: Flask, logged_in: FlaskClient
) -> None:
    limit = NAME_MAX_LENGTH
    with app.app_context():  # the migrated schema, not only the model, has the same length
        for model in (Contact, Group):
            (column,) = [c for c in inspect(db.engine).get_columns(model.__tablename__) if c["name"] == "name"]
            assert column["type"].length == model.__table__.c.name.type.length == limit
    fits, too_long = "N" * limit, "N" * (limit + 1)
    assert f'maxlength="{limit}"' in logged_in.get("/contacts/new").get_data(as_text=True)
    assert f'maxlength="{limit}"' in logged_in.get("/groups").get_data(as_text=True)
    refused = logged_in.post(
        "/contacts/new", data={"name": too_long, "phone": "+14155550101", "csrf_token": _token(logged_in)}
    )
    assert refused.status_code == 422 and f"longer than {limit} characters" in refused.get_data(as_text=True)
    refused = logged_in.post("/groups", data={"name": too_long, "csrf_token": _token(logged_in, "/groups")})
    assert refused.status_code == 422 and f"longer than {limit} characters" in refused.get_data(as_text=True)
    report = _import(logged_in, f"{fits},+14155550101\n{too_long},+14155550102\n".encode()).get_data(as_text=True)
    assert "1 added" in report and f"the name is longer than {limit} characters" in report
    assert _contacts(app) == {"+14155550101": fits}


def test_group_crud_and_membership(app: Flask, logged_in: FlaskClient) -> None:
    _add(app, "Ada", "+14155550101")
    token = _token(logged_in, "/groups")
    assert logged_in.post("/groups", data={"name": "Staff", "csrf_token": token}).status_code == 302
    dup = logged_in.post("/groups", data={"name": "Staff", "csrf_token": token})
    assert dup.status_code == 422 and "already exists" in dup.get_data(as_text=True)
    empty = logged_in.post("/groups", data={"name": "  ", "csrf_token": token})
    assert empty.status_code == 422 and "Enter a group name." in empty.get_data(as_text=True)
    with app.app_context():
        group_id = db.session.scalar(select(Group.id).where(Group.name == "Staff"))
    url = f"/groups/{group_id}"
    unknown = logged_in.post(url, data={"member-phone": "+14155550199", "csrf_token": token})
    assert unknown.status_code == 422 and "No contact has the number +14155550199" in unknown.get_data(as_text=True)
    bad = logged_in.post(url, data={"member-phone": "abc", "csrf_token": token})
    assert bad.status_code == 422 and "abc is" in bad.get_data(as_text=True)
    assert logged_in.post(url, data={"member-phone": "415 555 0101", "csrf_token": token}).status_code == 302
    assert "Ada" in logged_in.get(url).get_data(as_text=True)
    assert logged_in.post(url, data={"rename-name": "Team", "csrf_token": token}).status_code == 302
    with app.app_context():
        group = db.session.get(Group, group_id)
        assert group.name == "Team" and [c.name for c in group.contacts] == ["Ada"]
        contact_id = group.contacts[0].id
    assert logged_in.post(f"{url}/members/{contact_id}/remove", data={"csrf_token": token}).status_code == 302
    assert logged_in.post(f"{url}/delete", data={"csrf_token": token}).status_code == 302
    with app.app_context():
        assert db.session.get(Group, group_id) is None
    assert _contacts(app) == {"+14155550101": "Ada"}


def test_a_name_never_reaches_a_script_in_the_delete_confirmations(app: Flask, logged_in: FlaskClient) -> None:
    """HTML-escaping does not protect a JavaScript string inside an attribute (the browser unescapes
    the attribute first), so the question sits in data-confirm and the handler only reads it."""
    name = "x');alert(1);//"
    contact_id = _add(app, name, "+14155550101", "Club');alert(2);//")
    pages = [
        logged_in.get(path).get_data(as_text=True) for path in ("/contacts", f"/contacts/{contact_id}/edit", "/groups")
    ]
    for html in pages:
        assert "confirm('" not in html
    assert 'data-confirm="Delete x&#39;);alert(1);//?"' in pages[0]
    assert 'data-confirm="Delete x&#39;);alert(1);//?"' in pages[1]
    assert 'data-confirm="Delete the group Club&#39;);alert(2);//? Its contacts are kept."' in pages[2]
