"""Twilio's Smart Encoding: the Unicode look-alikes a Messaging Service swaps for GSM-7 characters.

A Messaging Service with Smart Encoding on (the default for new services) replaces curly quotes,
long dashes, unusual spaces and similar characters with plain GSM-7 ones before sending, and the
message Twilio stores, and lists, carries the replaced body. So a body we sent as `“Hi” — Ann`
comes back from the Messages list as `"Hi" - Ann`. The send job compares bodies to find a message
an earlier, timed-out attempt already created (Messages create has no idempotency key); compared
raw, a smart-encoded body looks like no message at all, and the delivery is sent a second time.
`comparable()` puts both sides through the same replacements before comparing.

The table is Twilio's "List of characters replaced by Smart Encoding"
(https://www.twilio.com/docs/messaging/services/smart-encoding-char-list), completed where that
page is silent by the map in Twilio's own segment calculator
(https://github.com/TwilioDevEd/message-segment-calculator, src/libs/SmartEncodingMap.ts), which
adds the dashes, the ellipsis, the bullet and the invisible characters. Twilio replaces only when
that leaves the whole body GSM-7: a body that keeps an emoji goes out as UCS-2 with every
character as written (https://www.twilio.com/blog/copilot-just-got-even-smarter-announcing-smart-encoding-html).

Two places where the sources disagree or are vague are made harmless for matching rather than
guessed: the page shows the unusual spaces as a blank while the calculator writes two spaces (and
seven for a tab), so `comparable()` folds every run of spaces into one; and the calculator turns
‹ into > and › into <, which reads like a slip, so both marks map to the bracket they look like.
"""

from __future__ import annotations

import re

from smsdash.sms.segments import is_gsm7

# Grouped by replacement, in the order of Twilio's list.
_REPLACED_BY: dict[str, str] = {
    '"': "\u00ab\u00bb\u201c\u201d\u02ba\u02ee\u201f\u201e\u275d\u275e\u301d\u301e\uff02",
    "'": "\u2018\u2019\u02bb\u02c8\u02bc\u02bd\u02b9\u201b\uff07\u00b4\u02ca\u0060\u02cb\u275b\u275c"
    "\u0313\u0314\ufe10\ufe11",
    "/": "\u00f7\u29f8\u0337\u0338\u2044\u2215\uff0f",
    "1/4": "\u00bc",
    "1/2": "\u00bd",
    "3/4": "\u00be",
    "\\": "\u29f9\u29f5\u20e5\ufe68\uff3c",
    "_": "\u0332\uff3f\u2017",
    "|": "\u20d2\u20d3\u2223\uff5c\u23b8\u23b9\u23d0\u239c\u239f",
    "-": "\u23bc\u23bd\u2015\ufe63\uff0d\u2010\u2043\u2013\u2014\u2022",
    "@": "\ufe6b\uff20",
    "$": "\ufe69\uff04",
    "!": "\u01c3\ufe15\ufe57\uff01",
    "!!": "\u203c",
    "#": "\ufe5f\uff03",
    "%": "\ufe6a\uff05",
    "&": "\ufe60\uff06",
    ",": "\u201a\u0326\ufe50\ufe51\uff0c\uff64\u3001",
    "(": "\u2768\u276a\ufe59\uff08\u27ee\u2985",
    ")": "\u2769\u276b\ufe5a\uff09\u27ef\u2986",
    "*": "\u204e\u2217\u229b\u2722\u2723\u2724\u2725\u2731\u2732\u2733\u273a\u273b\u273c\u273d\u2743"
    "\u2749\u274a\u274b\u29c6\ufe61\uff0a",
    "+": "\u02d6\ufe62\uff0b",
    ".": "\u3002\ufe52\uff0e\uff61",
    "...": "\u2026",
    ":": "\u02d0\u02f8\u2982\ua789\ufe13\uff1a",
    ";": "\u204f\ufe14\ufe54\uff1b",
    "<": "\ufe64\uff1c\u2039",
    "=": "\u0347\ua78a\ufe66\uff1d",
    ">": "\ufe65\uff1e\u203a",
    "?": "\ufe16\ufe56\uff1f",
    "^": "\u02c6\u0302\uff3e\u1dcd",
    "{": "\u2774\ufe5b\uff5b",
    "}": "\u2775\ufe5c\uff5d",
    "[": "\uff3b",
    "]": "\uff3d",
    "~": "\u02dc\u02f7\u0303\u0330\u0334\u223c\uff5e",
    " ": "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
    "\u2028\u2029\u0009\u0080\u008d\u0090\u009b\u009f",
    "": "\u0000\u0003\u0004\u0010\u0011\u0012\u0013\u0014\u0017\u0019\u2060\u200b\ufeff",
}
# Fullwidth capitals and small capitals (Twilio lists both; Q and X have no small capital).
_LETTERS: dict[str, str] = {chr(0xFF21 + i): letter for i, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")} | dict(
    zip(
        "\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d"
        "\u0274\u1d0f\u1d18\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22",
        "ABCDEFGHIJKLMNOPRSTUVWYZ",
        strict=True,
    )
)
_DIGITS: dict[str, str] = {chr(0xFF10 + d): str(d) for d in range(10)}

REPLACEMENTS: dict[str, str] = (
    {char: replacement for replacement, chars in _REPLACED_BY.items() for char in chars} | _LETTERS | _DIGITS
)
_TABLE = str.maketrans(REPLACEMENTS)
_SPACE_RUNS = re.compile(" {2,}")


def transliterate(body: str) -> str:
    """Every character in Twilio's list replaced, whatever else the body holds."""
    return body.translate(_TABLE)


def smart_encode(body: str) -> str:
    """The body as a Messaging Service with Smart Encoding stores and sends it: transliterated
    when that makes it all GSM-7, else unchanged (it goes out as UCS-2 anyway)."""
    replaced = transliterate(body)
    return replaced if all(is_gsm7(char) for char in replaced) else body


def comparable(body: str) -> str:
    """A form of `body` that is the same for what we sent and what Twilio stored of it, with or
    without Smart Encoding: transliterated, with runs of spaces folded into one."""
    return _SPACE_RUNS.sub(" ", transliterate(body))
