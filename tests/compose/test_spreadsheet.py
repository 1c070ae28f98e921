"""Spreadsheet sends: CSV and XLSX read a row at a time, every bad row named by line, every bad
file refused with a reason, and nothing sent until the operator confirms."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import Workbook
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from smsdash.compose import checked_rows, uploads
from smsdash.compose.spreadsheet import SpreadsheetError, read_sheet
from smsdash.extensions import db
from smsdash.models import Delivery, Message
from tests.conftest import csrf_token_from

BODY = "Hi {{name}}, your shift at {{site}} starts at {{time|9:00}}"
GOOD = "Name,Phone,Site,Time\nAda,+14155550101,Leeds,8:00\nBob,(415) 555-0102,York,\n"


def _read(content: bytes, name: str = "sheet.csv", body: str = BODY) -> Any:
    return read_sheet(io.BytesIO(content), name, body, "US")


def _xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_every_other_column_is_a_placeholder_for_its_row(app: Flask) -> None:
    with app.app_context():
        sheet = _read(GOOD.encode())
    assert (sheet.columns, sheet.phone_column, sheet.rows, sheet.errors) == (
        ["name", "phone", "site", "time"],
        "phone",
        2,
        [],
    )
    assert [r.body for r in sheet.texts.rendered] == [
        "Hi Ada, your shift at Leeds starts at 8:00",
        "Hi Bob, your shift at York starts at 9:00",
    ]


@pytest.mark.parametrize(
    ("encoding", "prefix"), [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("cp1252", b"")], ids=["utf8", "bom", "1252"]
)
def test_utf8_utf8_with_bom_and_windows_1252_are_read(app: Flask, encoding: str, prefix: bytes) -> None:
    content = prefix + "phone,site\n+14155550101,Café Zoë – north\n".encode(encoding)
    with app.app_context():
        sheet = _read(content, body="{{site}}")
    assert sheet.columns == ["phone", "site"] and sheet.texts.rendered[0].body == "Café Zoë – north"


def test_xlsx_rows_are_read_with_numbers_as_typed(app: Flask) -> None:
    content = _xlsx([["Phone", "Name", "Site"], [14155550101, "Ada", "Leeds"], [None, None, None], ["x", "Bob", ""]])
    with app.app_context():
        sheet = _read(content, "sheet.xlsx")
    assert [r.to_number for r in sheet.recipients] == ["+14155550101"]
    assert [line for line, _ in sheet.errors] == [4]  # the blank row 3 is skipped, not an error


@pytest.mark.parametrize(
    ("content", "name", "words"),
    [
        (b"", "a.csv", "The file is empty"),
        (b"  \n\n", "a.csv", "The file is empty"),
        (b"name,site\nAda,Leeds\n", "a.csv", "No phone column"),
        (b"phone,site\n", "a.csv", "header row but no rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a.csv", "binary data"),
        ("phone\n+14155550101\n".encode("utf-16"), "a.csv", "UTF-16"),
        (b"phone,site\n+14155550101,\x81\x8d\x8f\n", "a.csv", "neither UTF-8 nor Windows-1252"),
        (b"phone,site\n", "a.xlsx", "not an Excel workbook"),
        (b"PK\x03\x04broken", "a.xlsx", "not an Excel workbook we can read"),
        (b"phone,Phone\n+14155550101,1\n", "a.csv", "Two columns are both named"),
    ],
)
def test_a_bad_file_gets_a_clear_message(app: Flask, content: bytes, name: str, words: str) -> None:
    with app.app_context(), pytest.raises(SpreadsheetError, match=words):
        _read(content, name)


def test_bad_rows_are_named_by_line_and_reason(app: Flask) -> None:
    content = (
        "name,phone,site\n"
        "Ada,+14155550101,Leeds\n"
        "Bob,12ab,York\n"  # line 3: bad number
        "Cy,+14155550103,\n"  # line 4: no site, which the body needs without a fallback
        "Ada again,+1 415 555 0101,Leeds\n"  # line 5: duplicate of line 2
        "Di,+14155550104," + "x" * 1600 + "\n"  # line 6: too long
    ).encode()
    with app.app_context():
        sheet = _read(content, body="Hi {{name}} at {{site}}")
    assert sheet.errors == [
        (3, "12ab: not a phone number"),
        (4, "no value for site, which the message uses"),
        (6, "the text would be 1609 characters; Twilio accepts 1600"),
    ]
    assert sheet.duplicates == [(5, "+14155550101 is already on line 2; this row is skipped")]


def test_a_placeholder_no_column_provides_is_one_error_for_the_file(app: Flask) -> None:
    with app.app_context():
        sheet = _read(b"phone\n+14155550101\n+14155550102\n", body="At {{site}}")
    assert sheet.errors == [(1, "the message uses site, but no column has that name: add the column or a fallback")]


def test_fifty_thousand_rows_are_read(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("name,phone,site\n")
        for i in range(50_000):
            out.write(f"Person {i},+1415{2_000_000 + i:07d},Site {i % 7}\n")
    with app.app_context(), path.open("rb") as stream:
        sheet = read_sheet(stream, "big.csv", "Hi {{name}} at {{site}}", "US")
    assert (sheet.rows, len(sheet.recipients), sheet.errors) == (50_000, 50_000, [])


def _post(client: FlaskClient, **data: Any) -> Any:
    token = csrf_token_from(client.get("/messages/new/spreadsheet").get_data(as_text=True))
    return client.post(
        "/messages/new/spreadsheet", data={"csrf_token": token, **data}, content_type="multipart/form-data"
    )


def _counts(app: Flask) -> tuple[int, int]:
    with app.app_context():
        return (
            db.session.scalar(select(func.count()).select_from(Message)) or 0,
            db.session.scalar(select(func.count()).select_from(Delivery)) or 0,
        )


def test_upload_shows_the_rows_then_sends_only_on_confirm(app: Flask, logged_in: FlaskClient) -> None:
    checked = _post(logged_in, body=BODY, file=(io.BytesIO(GOOD.encode()), "staff.csv"))
    html = checked.get_data(as_text=True)
    assert checked.status_code == 200 and "2 rows read" in html and "Send to 2 recipients" in html
    assert "Hi Ada, your shift at Leeds starts at 8:00" in html
    assert _counts(app) == (0, 0)  # nothing is sent until the operator confirms
    token = html.split('name="sheet" type="hidden" value="')[1].split('"')[0]
    sent = _post(logged_in, body=BODY, sheet=token, sheet_name="staff.csv", send="2")
    assert sent.status_code == 302
    with app.app_context():
        assert dict(db.session.execute(select(Delivery.to_number, Delivery.body)).all()) == {
            "+14155550101": "Hi Ada, your shift at Leeds starts at 8:00",
            "+14155550102": "Hi Bob, your shift at York starts at 9:00",
        }
    assert not list((Path(app.instance_path) / "uploads").iterdir())  # the kept file is gone once sent


def test_a_bad_row_blocks_the_send_and_keeps_the_body_and_file(app: Flask, logged_in: FlaskClient) -> None:
    content = b"name,phone,site\nAda,+14155550101,Leeds\nBob,12ab,York\n"
    response = _post(logged_in, body=BODY, file=(io.BytesIO(content), "staff.csv"))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Line 3: 12ab: not a phone number" in html and "Send to" not in html
    assert f"{BODY}</textarea>" in html and "Using <strong>staff.csv</strong>" in html
    token = html.split('name="sheet" type="hidden" value="')[1].split('"')[0]
    forced = _post(logged_in, body=BODY, sheet=token, sheet_name="staff.csv", send="1")
    assert forced.status_code == 422 and _counts(app) == (0, 0)


def test_a_bad_file_on_the_page_is_named_and_nothing_is_sent(app: Flask, logged_in: FlaskClient) -> None:
    response = _post(logged_in, body=BODY, file=(io.BytesIO(b"name,site\nAda,Leeds\n"), "staff.csv"))
    assert response.status_code == 422 and "No phone column" in response.get_data(as_text=True)
    assert _post(logged_in, body=BODY).status_code == 422  # no file at all
    assert _counts(app) == (0, 0)


def test_cli_sends_a_spreadsheet_and_refuses_a_bad_one(app: Flask, runner: Any, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.xlsx"
    good.write_text(GOOD)
    bad.write_bytes(_xlsx([["Name", "Site"], ["Ada", "Leeds"]]))
    refused = runner.invoke(args=["sms", "send", "--csv", str(bad), "--body", BODY])
    assert refused.exit_code == 1 and "No phone column" in refused.output and _counts(app) == (0, 0)
    missing = tmp_path / "missing.csv"
    missing.write_text("name,phone,site\nAda,+14155550101,\n")
    result = runner.invoke(args=["sms", "send", "--csv", str(missing), "--body", BODY])
    assert result.exit_code == 1 and "line 2: no value for site" in result.output
    result = runner.invoke(args=["sms", "send", "--csv", str(good), "--body", BODY])
    assert result.exit_code == 0, result.output
    assert _counts(app) == (1, 2)


def test_the_confirm_sends_the_rows_checked_at_upload_without_reading_the_file_again(
    app: Flask, logged_in: FlaskClient
) -> None:
    html = _post(logged_in, body=BODY, file=(io.BytesIO(GOOD.encode()), "staff.csv")).get_data(as_text=True)
    token = html.split('name="sheet" type="hidden" value="')[1].split('"')[0]
    (Path(app.instance_path) / "uploads" / token).write_bytes(b"")  # read again, it would be "empty"
    edited = BODY.replace("Hi", "Hello")
    rechecked = _post(logged_in, body=edited, sheet=token, sheet_name="staff.csv")
    assert rechecked.status_code == 200 and "Hello Ada, your shift at Leeds" in rechecked.get_data(as_text=True)
    sent = _post(logged_in, body=edited, sheet=token, sheet_name="staff.csv", send="2")
    assert sent.status_code == 302 and _counts(app) == (1, 2)


def test_a_rows_record_from_another_region_or_unreadable_is_rebuilt_from_the_upload(app: Flask) -> None:
    with app.app_context():
        token, _ = uploads.keep(FileStorage(io.BytesIO(b"phone,site\n07911 123456\n"), "staff.csv"))
        path = uploads.path_for(token)
        assert path is not None
        assert [line for line, _ in checked_rows.rows_for(token, path, "US").errors] == [2]  # not a US number
        assert [r.to_number for r in checked_rows.rows_for(token, path, "GB").recipients] == ["+447911123456"]
        record = path.with_name(path.name + checked_rows.SUFFIX)
        record.write_text("{not json")
        assert [r.to_number for r in checked_rows.rows_for(token, path, "GB").recipients] == ["+447911123456"]


def test_a_confirm_whose_edited_body_a_row_cannot_fill_is_refused_by_line(app: Flask, logged_in: FlaskClient) -> None:
    html = _post(logged_in, body=BODY, file=(io.BytesIO(GOOD.encode()), "staff.csv")).get_data(as_text=True)
    token = html.split('name="sheet" type="hidden" value="')[1].split('"')[0]
    refused = _post(logged_in, body="Hi {{name}} at {{time}}", sheet=token, sheet_name="staff.csv", send="2")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Line 3: no value for time, which the message uses" in page
    assert "Hi {{name}} at {{time}}</textarea>" in page and _counts(app) == (0, 0)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "The file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data"),
        (b"phone,site\n+14155550101,\x81\x8d\x8f\n", "neither UTF-8 nor Windows-1252"),
        (b"name,site\nAda,Leeds\n", "No phone column"),
    ],
    ids=["empty", "binary", "encoding", "no-phone"],
)
def test_each_bad_file_is_named_on_the_page_keeping_the_body_and_sending_nothing(
    app: Flask, logged_in: FlaskClient, content: bytes, words: str
) -> None:
    response = _post(logged_in, body=BODY, file=(io.BytesIO(content), "staff.csv"))
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and words in html and "Send to" not in html
    assert f"{BODY}</textarea>" in html and _counts(app) == (0, 0)


@pytest.mark.parametrize(
    ("encoding", "prefix"), [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("cp1252", b"")], ids=["utf8", "bom", "1252"]
)
def test_each_encoding_sends_its_text_as_written(
    app: Flask, logged_in: FlaskClient, encoding: str, prefix: bytes
) -> None:
    content = prefix + "Phone,Site\n+14155550101,Café Zoë – north\n".encode(encoding)
    html = _post(logged_in, body="At {{site}}", file=(io.BytesIO(content), "s.csv")).get_data(as_text=True)
    token = html.split('name="sheet" type="hidden" value="')[1].split('"')[0]
    assert _post(logged_in, body="At {{site}}", sheet=token, send="1").status_code == 302
    with app.app_context():
        assert db.session.scalars(select(Delivery.body)).all() == ["At Café Zoë – north"]
