"""SMS segment counting: how many billed segments a body costs, and why.

An operator pays per segment, and one emoji can triple a message's cost by switching the whole
body from GSM-7 (160 septets, 153 per part when split) to UCS-2 (70 UTF-16 code units, 67 per
part). The compose page shows this live, and the server is the source of truth for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsdash.sms.body import MAX_BODY_CHARS

ENCODING_GSM7 = "GSM-7"
ENCODING_UCS2 = "UCS-2"

# GSM 03.38 basic character set (the escape character itself is not typeable).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs two septets (escape + character).
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENDED

_LIMITS = {ENCODING_GSM7: (160, 153), ENCODING_UCS2: (70, 67)}


@dataclass(frozen=True)
class SegmentCount:
    """What a body costs: its encoding, length in encoding units, segments, and room left."""

    encoding: str
    characters: int
    units: int
    segments: int
    per_segment: int
    remaining: int
    ucs2_chars: tuple[str, ...]
    too_long: bool


def is_gsm7(char: str) -> bool:
    return char in GSM7_BASIC or char in GSM7_EXTENDED


def _unit_costs(body: str, encoding: str) -> list[int]:
    """Cost of each character in septets (GSM-7) or UTF-16 code units (UCS-2)."""
    if encoding == ENCODING_GSM7:
        return [2 if c in GSM7_EXTENDED else 1 for c in body]
    return [2 if ord(c) > 0xFFFF else 1 for c in body]


def _split_segments(costs: list[int], part_size: int) -> tuple[int, int]:
    """Pack characters into parts without splitting one (an escape pair or a surrogate pair)
    across two parts, as handsets and Twilio do; return (parts, units used in the last part)."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part_size:
            parts += 1
            used = 0
        used += cost
    return parts, used


def count_segments(body: str) -> SegmentCount:
    """Count the segments `body` will be sent as, and which characters forced UCS-2."""
    # Most bodies are all GSM-7: one set test in C instead of a look-up per character.
    forcing = () if GSM7_ALL.issuperset(body) else tuple(dict.fromkeys(c for c in body if not is_gsm7(c)))
    encoding = ENCODING_UCS2 if forcing else ENCODING_GSM7
    single, multi = _LIMITS[encoding]
    costs = _unit_costs(body, encoding)
    units = sum(costs)
    if units == 0:
        segments, per_segment, remaining = 0, single, single
    elif units <= single:
        segments, per_segment, remaining = 1, single, single - units
    else:
        segments, last = _split_segments(costs, multi)
        per_segment, remaining = multi, multi - last
    return SegmentCount(
        encoding=encoding,
        characters=len(body),
        units=units,
        segments=segments,
        per_segment=per_segment,
        remaining=remaining,
        ucs2_chars=forcing,
        too_long=len(body) > MAX_BODY_CHARS,
    )


def describe_char(char: str) -> str:
    """A readable name for a character that forced UCS-2 (whitespace and emoji are hard to see)."""
    if char.isprintable() and not char.isspace():
        return char
    return f"U+{ord(char):04X}"
