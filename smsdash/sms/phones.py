"""Phone numbers: anything an operator types, normalised to E.164, or a clear reason why not."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import timezone as number_zones

# Separators an operator may paste between numbers: commas, semicolons, new lines.
_SPLIT = re.compile(r"[,;\n\r]+")
# A number already written as E.164: "+", a country code, then digits only (15 at most).
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


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
    if _E164.fullmatch(text) and _valid_as_written(text):
        return text
    return _parsed(raw, text, region)


def _parsed(raw: str, text: str, region: str) -> str:
    """The full path: phonenumbers reads `text` however it is written, and says what is wrong."""
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(raw, "not a phone number") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber(raw, "wrong number of digits")
    if not phonenumbers.is_valid_number(parsed) and not _is_test_number(parsed):
        raise InvalidNumber(raw, "not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _valid_as_written(text: str) -> bool:
    """True when `text` (E.164 in form) is a valid number exactly as written, checked by
    phonenumbers without its parser.

    `phonenumbers.parse` is most of the cost of checking a number (a 50,000-row spreadsheet
    spent seconds in it), and a number already in E.164 needs none of its work: the digits after
    the country code are the national number. Whatever parse might read differently (a national
    number starting with 0, which some countries keep, or with the country's national prefix,
    which parse may strip) is left to the full path, as is every number that fails here, so the
    result and each refusal's reason are what the full path gives."""
    for length in (1, 2, 3):
        country_code = int(text[1 : 1 + length])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return False
    national = text[1 + length :]
    if national.startswith("0"):
        return False
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    prefix = metadata.national_prefix_for_parsing if metadata is not None else None
    if metadata is None or (prefix and re.match(prefix, national)):
        return False
    parsed = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return phonenumbers.is_possible_number(parsed) and (phonenumbers.is_valid_number(parsed) or _is_test_number(parsed))


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


def time_zones(number: str) -> tuple[str, ...]:
    """The IANA zones an E.164 number may be in, by its prefix (phonenumbers' geocoding data):
    one for most numbers, several for a prefix that spans zones, none when unknown."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in number_zones.time_zones_for_number(parsed) if z != "Etc/Unknown")
