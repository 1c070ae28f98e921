"""Phone numbers: anything an operator types, normalised to E.164, or a clear reason why not."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

# Separators an operator may paste between numbers: commas, semicolons, new lines.
_SPLIT = re.compile(r"[,;\n\r]+")


class InvalidNumber(ValueError):
    """A number that cannot be sent to; str() names the number and the reason."""

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"{raw!r}: {reason}")
        self.raw = raw
        self.reason = reason


def normalize(raw: str, region: str = "US") -> str:
    """Return `raw` as E.164 (`+14155550101`); national numbers are read in `region`."""
    text = raw.strip()
    if not text:
        raise InvalidNumber(raw, "empty")
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(raw, "not a phone number") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber(raw, "wrong number of digits")
    if not phonenumbers.is_valid_number(parsed) and not _is_test_number(parsed):
        raise InvalidNumber(raw, "not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _is_test_number(parsed: phonenumbers.PhoneNumber) -> bool:
    """Twilio's magic test numbers (+1 500 555 xxxx) are invalid in the numbering plan, but
    the simulator and Twilio's test credentials answer them, so they must be accepted."""
    return parsed.country_code == 1 and str(parsed.national_number).startswith("500555")


@dataclass(frozen=True)
class ParsedNumbers:
    numbers: list[str]
    errors: list[InvalidNumber]


def parse_many(raws: Iterable[str], region: str = "US") -> ParsedNumbers:
    """Normalise many numbers, keeping each one's error; duplicates are dropped, order kept."""
    numbers: list[str] = []
    errors: list[InvalidNumber] = []
    seen: set[str] = set()
    for raw in raws:
        try:
            number = normalize(raw, region)
        except InvalidNumber as exc:
            errors.append(exc)
            continue
        if number not in seen:
            seen.add(number)
            numbers.append(number)
    return ParsedNumbers(numbers, errors)


def split_numbers(text: str) -> list[str]:
    """Split a pasted block of numbers on commas, semicolons and new lines."""
    return [part.strip() for part in _SPLIT.split(text) if part.strip()]
