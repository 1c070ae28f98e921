"""Filling a body's placeholders for each recipient, and the rules that refuse a send.

Compose (page, CLI, and later the API) renders every recipient's text here, once, before
anything is stored: the page's preview, segment counter and missing-field list, and the
service's refusal come from the same `Personalisation`, so what the operator sees is what
is sent and what the service refuses is what the page refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from smsdash.chunks import chunks
from smsdash.extensions import db
from smsdash.models import Contact, ContactField
from smsdash.sms.body import MAX_BODY_CHARS, body_problem
from smsdash.sms.placeholders import PlaceholderSyntaxError, parse, recipient_values
from smsdash.sms.segments import SegmentCount, count_segments

# Names and numbers listed in a refusal; the count says how many more there are.
LISTED = 10
_LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class Recipient:
    """One number to text (E.164, already normalised), the contact it came from, if any, and,
    for a spreadsheet row, that row's values (then the contact's fields are not used)."""

    to_number: str
    contact_id: int | None = None
    values: Mapping[str, str] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Rendered:
    recipient: Recipient
    label: str  # the contact's name, else the number: how the operator knows this recipient
    body: str
    missing: tuple[str, ...] = ()


@dataclass
class Personalisation:
    """Every recipient's text, and what stops the send (a syntax error, missing values, length)."""

    body: str
    syntax_error: PlaceholderSyntaxError | None = None
    personalised: bool = False
    rendered: list[Rendered] = field(default_factory=list)
    longest: Rendered | None = None
    longest_count: SegmentCount | None = None
    total_segments: int = 0

    @property
    def missing(self) -> list[Rendered]:
        return [r for r in self.rendered if r.missing]

    @property
    def too_long(self) -> list[Rendered]:
        return [r for r in self.rendered if len(r.body) > MAX_BODY_CHARS]

    def problems(self) -> list[str]:
        """Why this cannot be sent, in the operator's words; empty when it can."""
        if self.syntax_error is not None:
            e = self.syntax_error
            return [f"Placeholder error at line {e.line}, column {e.column}: {e.reason}."]
        plain_problem = body_problem(self.body)
        if plain_problem and (not self.personalised or not self.body.strip()):
            return [plain_problem]
        problems = []
        missing = self.missing
        if missing:
            fields = sorted({f for r in missing for f in r.missing})
            problems.append(
                f"{len(missing)} recipient{'' if len(missing) == 1 else 's'} "
                f"{'has' if len(missing) == 1 else 'have'} no {' or '.join(fields)}: {_names(missing)}. "
                "Add a fallback, e.g. {{ " + fields[0] + " | there }}, or remove them."
            )
        long = self.too_long
        if long:
            problems.append(
                f"{len(long)} {'recipient’s' if len(long) == 1 else 'recipients’'} text would be longer than the "
                f"{MAX_BODY_CHARS} characters Twilio accepts: "
                + _names(long, lambda r: f"{r.label} ({len(r.body)} characters)")
                + "."
            )
        return problems


def _names(rows: Sequence[Rendered], label: Callable[[Rendered], str] = lambda r: r.label) -> str:
    listed = ", ".join(label(r) for r in rows[:LISTED])
    return listed + (f" and {len(rows) - LISTED} more" if len(rows) > LISTED else "")


def personalise(body: str, recipients: Sequence[Recipient]) -> Personalisation:
    """Render `body` for each recipient: a spreadsheet row's values, else its contact's name and
    fields, else only `phone` (a typed number that matches no contact)."""
    result = Personalisation(body)
    try:
        template = parse(body)
    except PlaceholderSyntaxError as exc:
        result.syntax_error = exc
        return result
    plain = not template.is_personalised
    result.personalised = not plain
    names, fields = (
        ({}, {})
        if plain
        else _contact_data(r.contact_id for r in recipients if r.values is None and r.contact_id is not None)
    )
    counts: dict[str, SegmentCount] = {}
    longest_units = -1
    for recipient in recipients:
        name = names.get(recipient.contact_id) if recipient.contact_id is not None else None
        label = name or recipient.to_number
        if plain:
            rendered = Rendered(recipient, label, body)
        else:
            if recipient.values is not None:
                values = recipient_values(recipient.values.get("name"), recipient.to_number, recipient.values)
            else:
                values = recipient_values(name, recipient.to_number, fields.get(recipient.contact_id or 0))
            rendered = Rendered(recipient, label, template.render(values), tuple(template.missing(values)))
        result.rendered.append(rendered)
        # One body sent to many (every plain send) is counted once.
        count = counts.get(rendered.body)
        if count is None:
            count = counts[rendered.body] = count_segments(rendered.body)
        result.total_segments += count.segments
        if count.units > longest_units:
            longest_units, result.longest, result.longest_count = count.units, rendered, count
    return result


def _contact_data(ids: Iterable[int]) -> tuple[dict[int | None, str], dict[int, dict[str, str]]]:
    """Names and fields of the given contacts, read a chunk of ids at a time."""
    names: dict[int | None, str] = {}
    fields: dict[int, dict[str, str]] = {}
    for chunk in chunks(list(set(ids)), _LOOKUP_CHUNK):
        names.update(db.session.execute(select(Contact.id, Contact.name).where(Contact.id.in_(chunk))).all())
        for cid, name, value in db.session.execute(
            select(ContactField.contact_id, ContactField.name, ContactField.value).where(
                ContactField.contact_id.in_(chunk)
            )
        ).all():
            fields.setdefault(cid, {})[name] = value
    return names, fields


def link_contacts(recipients: Sequence[Recipient]) -> list[Recipient]:
    """Typed numbers that belong to a contact are linked to it, so they are personalised from the
    contact's fields and the message page shows the name."""
    phones = [r.to_number for r in recipients if r.contact_id is None]
    known: dict[str, int] = {}
    for chunk in chunks(phones, _LOOKUP_CHUNK):
        known.update(db.session.execute(select(Contact.phone, Contact.id).where(Contact.phone.in_(chunk))).all())
    if not known:
        return list(recipients)
    return [Recipient(r.to_number, known.get(r.to_number), r.values) if r.contact_id is None else r for r in recipients]
