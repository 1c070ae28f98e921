"""Placeholders in a message body: `{{field}}` and `{{ field | fallback text }}`, filled per recipient.

Rendering is plain substitution, never template evaluation: a placeholder names one field, and
the field's value is inserted as text whatever it contains (`{{`, HTML, a spreadsheet formula),
so a contact's data can never run as template code or change what the operator wrote. Anything
that looks like template syntax but is not a placeholder (an unclosed `{{`, a single brace, a
dotted name, an expression) is an error with its position: sending it as literal text would put
"Hi {{ first_name }" on a thousand phones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

# A field name as stored: lower_snake_case, starting with a letter. `field_key` makes one of these
# out of a spreadsheet header, and a placeholder's name is read the same way, so "{{First Name}}"
# and a column headed "First name" meet as `first_name`.
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
FIELD_NAME_MAX_LENGTH = 64


class PlaceholderSyntaxError(ValueError):
    """A body that cannot be rendered: `reason` in the operator's words, at `offset` (0-based)."""

    def __init__(self, reason: str, offset: int, body: str) -> None:
        self.reason = reason
        self.offset = offset
        self.line = body.count("\n", 0, offset) + 1
        self.column = offset - (body.rfind("\n", 0, offset) + 1) + 1
        super().__init__(f"{reason} (line {self.line}, column {self.column})")


@dataclass(frozen=True)
class Placeholder:
    """One `{{ field | fallback }}`; `fallback` is None when the placeholder has none."""

    field: str
    fallback: str | None


@dataclass(frozen=True)
class Template:
    """A parsed body: literal text and placeholders, in order."""

    parts: tuple[str | Placeholder, ...]

    @property
    def fields(self) -> list[str]:
        """Every field the body uses, in order of first use."""
        return list(dict.fromkeys(p.field for p in self.parts if isinstance(p, Placeholder)))

    @cached_property  # asked once per recipient: 50,000 times for a big spreadsheet
    def required(self) -> list[str]:
        """The fields used at least once with no fallback: a recipient without one cannot be sent."""
        return list(dict.fromkeys(p.field for p in self.parts if isinstance(p, Placeholder) and p.fallback is None))

    @property
    def is_personalised(self) -> bool:
        return any(isinstance(p, Placeholder) for p in self.parts)

    def missing(self, values: Mapping[str, str]) -> list[str]:
        """The required fields `values` has no text for (a blank value counts as missing)."""
        return [f for f in self.required if not _present(values.get(f))]

    def render(self, values: Mapping[str, str]) -> str:
        """The body with each placeholder replaced by its value, else its fallback, else nothing.

        Callers refuse a recipient with `missing` fields before sending; rendering one anyway
        (for a preview) leaves the gap empty rather than guessing."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values.get(part.field)
            out.append(value if _present(value) else (part.fallback or ""))  # type: ignore[arg-type]
        return "".join(out)


def _present(value: str | None) -> bool:
    return value is not None and value.strip() != ""


def field_key(label: str) -> str:
    """A field name in lower_snake_case from a header or typed label ("First Name" -> "first_name").

    Returns "" when nothing usable is left (a header of only punctuation), which callers refuse."""
    key = re.sub(r"[^0-9a-z]+", "_", label.strip().lower()).strip("_")
    return key[:FIELD_NAME_MAX_LENGTH]


def is_field_name(name: str) -> bool:
    return bool(_FIELD_NAME.fullmatch(name)) and len(name) <= FIELD_NAME_MAX_LENGTH


def parse(body: str) -> Template:
    """Split `body` into text and placeholders; raises PlaceholderSyntaxError at the first problem."""
    parts: list[str | Placeholder] = []
    text: list[str] = []
    i = 0
    while i < len(body):
        if body.startswith("{{", i):
            close = body.find("}}", i + 2)
            reopen = body.find("{{", i + 2)
            if close == -1 or (reopen != -1 and reopen < close):
                raise PlaceholderSyntaxError("“{{” is not closed with “}}”", i, body)
            if text:
                parts.append("".join(text))
                text = []
            parts.append(_placeholder(body, i, close))
            i = close + 2
        elif body[i] in "{}":
            raise PlaceholderSyntaxError(
                f"a single “{body[i]}”: placeholders are written {{{{field}}}} or {{{{field | fallback}}}}", i, body
            )
        else:
            text.append(body[i])
            i += 1
    if text:
        parts.append("".join(text))
    return Template(tuple(parts))


def _placeholder(body: str, start: int, close: int) -> Placeholder:
    inner = body[start + 2 : close]
    name, bar, fallback = inner.partition("|")
    stripped = name.strip()
    if not stripped:
        raise PlaceholderSyntaxError("a placeholder with no field name", start, body)
    if not is_field_name(stripped.lower()):
        raise PlaceholderSyntaxError(
            f"“{stripped}” is not a field name (letters, digits and _ only; no expressions)", start, body
        )
    if "{" in fallback or "}" in fallback:
        raise PlaceholderSyntaxError("a fallback cannot contain a brace", start, body)
    return Placeholder(stripped.lower(), fallback.strip() if bar else None)


def body_syntax_problem(body: str) -> str | None:
    """The first placeholder syntax error in `body`, in the operator's words; None when it parses."""
    try:
        parse(body)
    except PlaceholderSyntaxError as exc:
        return f"Placeholder error at line {exc.line}, column {exc.column}: {exc.reason}."
    return None


def recipient_values(name: str | None, phone: str, fields: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values a recipient's placeholders can use: its fields, plus name, first_name and phone.

    `first_name` is the first word of the name unless the contact has a first_name field of its
    own; `phone` is always the number the text goes to."""
    values = dict(fields or {})
    if name is not None:
        values.setdefault("name", name)
        if not _present(values.get("first_name")):
            first = name.split()
            values["first_name"] = first[0] if first else ""
    values["phone"] = phone
    return values
