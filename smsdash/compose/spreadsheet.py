"""Spreadsheet sends: a CSV or XLSX whose first row names the columns, one of them the phone.

Every other column is a placeholder for its row only. The file is read a row at a time (csv
over a text stream; openpyxl's read-only mode for XLSX), so 50,000 rows never sit in memory as
a file or a workbook, only as the recipients to send to. Each bad row is named by line number
and reason; a problem with the whole file (empty, binary, no phone column, an encoding we
cannot read) is a SpreadsheetError, and nothing is sent either way.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import IO, Any

from smsdash.compose.personalise import Personalisation, Recipient, personalise
from smsdash.sms.body import MAX_BODY_CHARS
from smsdash.sms.phones import InvalidNumber, normalize
from smsdash.sms.placeholders import PlaceholderSyntaxError, field_key, parse

PHONE_COLUMNS = ("phone", "phone_number", "mobile", "mobile_number", "number", "to", "telephone")
SAMPLE_ROWS = 10  # rows the page shows as read
# A spreadsheet saved as "CSV" by Excel on Windows is Windows-1252; everything else we accept is UTF-8.
ENCODINGS = ("utf-8-sig", "cp1252")


class SpreadsheetError(ValueError):
    """The file as a whole cannot be used; the message says why and what to do."""


@dataclass
class Sheet:
    """What a spreadsheet holds: its columns, the recipients of its good rows, and each bad row."""

    columns: list[str] = field(default_factory=list)
    phone_column: str = ""
    encoding: str = ""
    rows: int = 0
    recipients: list[Recipient] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # each recipient's line in the file
    sample: list[tuple[int, list[str]]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    texts: Personalisation | None = None


def read_sheet(stream: IO[bytes], filename: str, body: str, region: str) -> Sheet:
    """Read every row of `stream` and check it against `body`; raises SpreadsheetError."""
    return check_sheet(read_rows(stream, filename, region), body)


def read_rows(stream: IO[bytes], filename: str, region: str) -> Sheet:
    """Read every row of `stream` and check each number, which no body changes: the costly half
    of a check, done once per upload (see compose/checked_rows.py); raises SpreadsheetError."""
    head = stream.read(4096)
    stream.seek(0)
    if not head.strip():
        raise SpreadsheetError("The file is empty: it needs a first row naming the columns, then a row per person")
    if head.startswith(b"PK\x03\x04"):
        return _collect(_xlsx_rows(stream), region)
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise SpreadsheetError("The file is named .xlsx but is not an Excel workbook; save it again from Excel")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SpreadsheetError("The file is UTF-16 text; save it as “CSV UTF-8” and upload it again")
    if b"\x00" in head:
        raise SpreadsheetError("The file is not a spreadsheet (it holds binary data); upload a .csv or .xlsx file")
    for encoding in ENCODINGS:
        stream.seek(0)
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        try:
            sheet = _collect(_csv_rows(text), region)
        except UnicodeDecodeError:
            continue
        finally:
            text.detach()  # the caller owns the stream
        sheet.encoding = encoding
        return sheet
    raise SpreadsheetError("The file is neither UTF-8 nor Windows-1252 text; save it as “CSV UTF-8” and try again")


def _csv_rows(text: io.TextIOWrapper) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(text)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise SpreadsheetError(f"Line {reader.line_num} is not valid CSV ({exc})") from None


def _xlsx_rows(stream: IO[bytes]) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise SpreadsheetError(f"The file is not an Excel workbook we can read ({exc})") from None
    try:
        sheet = workbook.active
        for line, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield line, [_cell_text(v) for v in row]
    finally:
        workbook.close()


def _cell_text(value: Any) -> str:
    """A cell as the text it shows: a phone typed as a number is 447700900123, not 447700900123.0."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if value.time() != time(0) else value.strftime("%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _header(cells: list[str]) -> tuple[list[str], int]:
    columns = [field_key(c) for c in cells]
    phone = next((i for i, c in enumerate(columns) if c in PHONE_COLUMNS), None)
    if phone is None:
        raise SpreadsheetError(
            "No phone column: the first row must name the columns, one of them “phone” (or mobile, number)"
        )
    named = [c for c in columns if c]
    clash = next((c for c in named if named.count(c) > 1), None)
    if clash:
        raise SpreadsheetError(f"Two columns are both named “{clash}”; give each column its own name")
    return columns, phone


def _collect(rows: Iterator[tuple[int, list[str]]], region: str) -> Sheet:
    """The header, then each row: a recipient with the row's values, or a bad line with its reason."""
    sheet = Sheet()
    seen: dict[str, int] = {}
    # Each distinct number as written is checked once: a sheet lists the same people many times.
    checked: dict[str, str | InvalidNumber] = {}
    phone_at = -1
    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        if not sheet.columns:
            sheet.columns, phone_at = _header(cells)
            sheet.phone_column = sheet.columns[phone_at]
            continue
        sheet.rows += 1
        if len(sheet.sample) < SAMPLE_ROWS:
            sheet.sample.append((line, cells))
        raw = cells[phone_at].strip() if phone_at < len(cells) else ""
        phone = checked.get(raw)
        if phone is None:
            try:
                phone = checked[raw] = normalize(raw, region)
            except InvalidNumber as exc:
                phone = checked[raw] = exc
        if isinstance(phone, InvalidNumber):
            sheet.errors.append((line, f"{raw or 'the phone'}: {phone.reason}"))
            continue
        if phone in seen:
            sheet.duplicates.append((line, f"{phone} is already on line {seen[phone]}; this row is skipped"))
            continue
        seen[phone] = line
        values = {
            key: cells[i].strip() for i, key in enumerate(sheet.columns) if key and i != phone_at and i < len(cells)
        }
        sheet.recipients.append(Recipient(phone, values=values))
        sheet.lines.append(line)
    if not sheet.columns:
        raise SpreadsheetError("The file is empty: it needs a first row naming the columns, then a row per person")
    if not sheet.rows:
        raise SpreadsheetError("The file has a header row but no rows to send to")
    return sheet


def check_sheet(sheet: Sheet, body: str) -> Sheet:
    """Each row's text: a row missing a value the body needs, or too long, is a bad line.

    Adds to `sheet` (its errors and texts): call it once per Sheet that read_rows returned."""
    try:
        template = parse(body)
    except PlaceholderSyntaxError:
        sheet.texts = personalise(body, [])  # carries the syntax error for the page
        return sheet
    available = {*sheet.columns, "phone"} | ({"first_name"} if "name" in sheet.columns else set())
    absent = [f for f in template.required if f not in available]
    if absent:
        sheet.errors.insert(
            0,
            (1, f"the message uses {', '.join(absent)}, but no column has that name: add the column or a fallback"),
        )
        return sheet
    sheet.texts = personalise(body, sheet.recipients)
    for line, rendered in zip(sheet.lines, sheet.texts.rendered, strict=True):
        if rendered.missing:
            sheet.errors.append((line, f"no value for {', '.join(rendered.missing)}, which the message uses"))
        elif len(rendered.body) > MAX_BODY_CHARS:
            sheet.errors.append(
                (line, f"the text would be {len(rendered.body)} characters; Twilio accepts {MAX_BODY_CHARS}")
            )
    sheet.errors.sort()
    return sheet
