"""What makes a message body sendable: the one rule for the compose form and `sms send`.

An operator should get the same answer for the same text whichever way they send it, so both
ask `body_problem` and show its words as they are. The limit is Twilio's: the Messages API
accepts a `Body` of up to 1,600 characters and rejects longer ones with error 21617.
"""

from __future__ import annotations

MAX_BODY_CHARS = 1600


def normalize_line_breaks(body: str) -> str:
    """The body with every line break as LF.

    A browser submits a textarea's line breaks as CRLF (the HTML form encoding), while the
    live counter and the command line see LF: without this, the same text typed on the page
    would count one character more per line than it does in the counter or in `sms send`."""
    return body.replace("\r\n", "\n").replace("\r", "\n")


def body_problem(body: str) -> str | None:
    """What is wrong with `body` as an SMS body, in words for the operator; None if nothing.

    Checks the body as it will be sent (line breaks already normalised): blank text (only
    spaces or line breaks) is refused as empty, not sent as an empty-looking SMS."""
    if not body.strip():
        return "The message is empty: write the text to send."
    if len(body) > MAX_BODY_CHARS:
        return f"The message is {len(body)} characters long; Twilio accepts at most {MAX_BODY_CHARS}."
    return None
