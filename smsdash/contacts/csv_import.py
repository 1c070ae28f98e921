"""CSV import of contacts (name, phone, and any other columns as fields): keep every good row,
name every bad one by line.

An operator importing a spreadsheet should not have to fix all of it before any of it lands:
good rows are saved, a number that already belongs to a contact updates that contact's name,
and each rejected row is reported with its line number and the reason.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from smsdash.chunks import chunks
from smsdash.extensions import db
from smsdash.models import NAME_MAX_LENGTH, Contact, ContactField
from smsdash.sms.phones import InvalidNumber, normalize
from smsdash.sms.placeholders import field_key, is_field_name

# Names a contact field cannot take: placeholders already mean the contact's own name and number.
RESERVED_FIELDS = frozenset({"name", "phone"})
_NAME_HEADERS = {"name", "full_name", "contact"}
_PHONE_HEADERS = {"phone", "phone_number", "number", "mobile", "to"}


@dataclass
class ImportReport:
    """What an import did: counts of added and updated contacts, the fields kept, and each rejected line."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    fields: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Columns:
    """Where the name and phone are, and every other named column as a field (position, name)."""

    name: int = 0
    phone: int = 1
    fields: tuple[tuple[int, str], ...] = ()


def _columns(header: list[str]) -> Columns | None:
    """The columns if `header` is a header row (it names a name and a phone column), else None.

    Headers are read as lower_snake_case ("Phone Number" is phone_number, "First Name" is the
    field first_name), the one rule placeholders use too."""
    keys = [field_key(cell) for cell in header]
    name = next((i for i, c in enumerate(keys) if c in _NAME_HEADERS), None)
    phone = next((i for i, c in enumerate(keys) if c in _PHONE_HEADERS), None)
    if name is None or phone is None:
        return None
    extra: dict[str, int] = {}
    for i, key in enumerate(keys):
        if i not in (name, phone) and is_field_name(key) and key not in RESERVED_FIELDS:
            extra.setdefault(key, i)  # a repeated header: the first column of that name is kept
    return Columns(name, phone, tuple((i, k) for k, i in extra.items()))


def _rows(text: str) -> tuple[list[tuple[int, list[str]]], Columns]:
    """Rows with their line numbers, and the columns (name, phone, fields)."""
    reader = csv.reader(io.StringIO(text))
    rows = [(reader.line_num, row) for row in reader]
    columns = Columns()
    if rows:
        header = _columns(rows[0][1])
        if header is not None:
            columns = header
            rows = rows[1:]
    return [(line, row) for line, row in rows if any(cell.strip() for cell in row)], columns


def import_contacts(text: str, region: str) -> ImportReport:
    """Import CSV `text` (columns name, phone, optional header) in the caller's transaction.

    With a header row, every other named column is kept as a contact field; a blank cell leaves
    that field as it was."""
    report = ImportReport()
    rows, columns = _rows(text)
    report.fields = [k for _, k in columns.fields]
    seen: dict[str, int] = {}
    parsed: list[tuple[str, str, dict[str, str]]] = []
    for line, row in rows:
        if len(row) <= max(columns.name, columns.phone):
            report.errors.append((line, "expected two columns: name, phone"))
            continue
        name, raw_phone = row[columns.name].strip(), row[columns.phone].strip()
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
        values = {k: row[i].strip() for i, k in columns.fields if i < len(row) and row[i].strip()}
        parsed.append((name, phone, values))
    _save(parsed, report)
    return report


def set_fields(contact: Contact, values: dict[str, str], *, replace: bool = False) -> bool:
    """Give `contact` these field values (all its fields, with `replace`); True if anything changed."""
    current = {f.name: f for f in contact.fields}
    changed = False
    for name, value in values.items():
        existing = current.get(name)
        if existing is None:
            contact.fields.append(ContactField(name=name, value=value))
            changed = True
        elif existing.value != value:
            existing.value, changed = value, True
    if replace:
        for name, existing in current.items():
            if name not in values:
                contact.fields.remove(existing)
                changed = True
    return changed


def _save(parsed: list[tuple[str, str, dict[str, str]]], report: ImportReport) -> None:
    existing: dict[str, Contact] = {}
    for chunk in chunks([p for _, p, _ in parsed], 500):
        existing.update(
            (c.phone, c)
            for c in db.session.scalars(
                select(Contact).where(Contact.phone.in_(chunk)).options(selectinload(Contact.fields))
            )
        )
    for name, phone, values in parsed:
        contact = existing.get(phone)
        if contact is None:
            contact = Contact(name=name, phone=phone)
            set_fields(contact, values)
            db.session.add(contact)
            report.added += 1
            continue
        renamed = contact.name != name
        contact.name = name
        if set_fields(contact, values) or renamed:
            report.updated += 1
        else:
            report.unchanged += 1
