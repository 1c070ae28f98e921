"""CSV import of contacts (name, phone): keep every good row, name every bad one by line.

An operator importing a spreadsheet should not have to fix all of it before any of it lands:
good rows are saved, a number that already belongs to a contact updates that contact's name,
and each rejected row is reported with its line number and the reason.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select

from smsdash.extensions import db
from smsdash.models import NAME_MAX_LENGTH, Contact
from smsdash.sms.phones import InvalidNumber, normalize

_NAME_HEADERS = {"name", "full name", "contact"}
_PHONE_HEADERS = {"phone", "phone number", "number", "mobile", "to"}


@dataclass
class ImportReport:
    """What an import did: counts of added and updated contacts, and each rejected line."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _columns(header: list[str]) -> tuple[int, int] | None:
    """(name, phone) column positions if `header` is a header row, else None."""
    cells = [cell.strip().lower() for cell in header]
    name = next((i for i, c in enumerate(cells) if c in _NAME_HEADERS), None)
    phone = next((i for i, c in enumerate(cells) if c in _PHONE_HEADERS), None)
    return (name, phone) if name is not None and phone is not None else None


def _rows(text: str) -> tuple[list[tuple[int, list[str]]], tuple[int, int]]:
    """Rows with their line numbers, and the (name, phone) column positions."""
    reader = csv.reader(io.StringIO(text))
    rows = [(reader.line_num, row) for row in reader]
    columns = (0, 1)
    if rows:
        header = _columns(rows[0][1])
        if header is not None:
            columns = header
            rows = rows[1:]
    return [(line, row) for line, row in rows if any(cell.strip() for cell in row)], columns


def import_contacts(text: str, region: str) -> ImportReport:
    """Import CSV `text` (columns name, phone, optional header) in the caller's transaction."""
    report = ImportReport()
    rows, (name_col, phone_col) = _rows(text)
    seen: dict[str, int] = {}
    parsed: list[tuple[str, str]] = []
    for line, row in rows:
        if len(row) <= max(name_col, phone_col):
            report.errors.append((line, "expected two columns: name, phone"))
            continue
        name, raw_phone = row[name_col].strip(), row[phone_col].strip()
        if not name:
            report.errors.append((line, "the name is empty"))
            continue
        if len(name) > NAME_MAX_LENGTH:
            report.errors.append((line, f"the name is longer than {NAME_MAX_LENGTH} characters"))
            continue
        try:
            phone = normalize(raw_phone, region)
        except InvalidNumber as exc:
            report.errors.append((line, f"{raw_phone or 'phone'!s}: {exc.reason}"))
            continue
        if phone in seen:
            report.errors.append((line, f"{phone} is already on line {seen[phone]}; this row was skipped"))
            continue
        seen[phone] = line
        parsed.append((name, phone))
    _save(parsed, report)
    return report


def _save(parsed: list[tuple[str, str]], report: ImportReport) -> None:
    existing = {
        c.phone: c for c in db.session.scalars(select(Contact).where(Contact.phone.in_([p for _, p in parsed])))
    }
    for name, phone in parsed:
        contact = existing.get(phone)
        if contact is None:
            db.session.add(Contact(name=name, phone=phone))
            report.added += 1
        elif contact.name != name:
            contact.name = name
            report.updated += 1
        else:
            report.unchanged += 1
