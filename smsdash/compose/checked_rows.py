"""The rows of an uploaded spreadsheet as read and checked once, kept beside the upload.

Reading a 50,000-row file and checking every number takes seconds; the page's confirm (and
each re-check with an edited body) would otherwise do it again, and a file checked then sent
could pass gunicorn's 30 s timeout. What the numbers check finds does not depend on the body,
so it is written once, as compact JSON named for the upload's token, and the later steps only
fill the body in. The upload itself stays the source: a missing, stale (another phone region)
or unreadable record is rebuilt from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from smsdash.compose.personalise import Recipient
from smsdash.compose.spreadsheet import Sheet, read_rows

# Bump when the layout below changes: an older record is then rebuilt, never misread.
FORMAT = 1
SUFFIX = ".rows.json"


def rows_for(token: str, upload: Path, region: str) -> Sheet:
    """The upload's rows with every number checked: from the record if it is current, else read
    from the upload (and recorded). Raises SpreadsheetError as read_rows does."""
    record = upload.with_name(upload.name + SUFFIX)
    sheet = _load(record, region)
    if sheet is None:
        with upload.open("rb") as stream:
            sheet = read_rows(stream, token, region)
        _save(record, sheet, region)
    return sheet


def _save(record: Path, sheet: Sheet, region: str) -> None:
    phone_at = sheet.columns.index(sheet.phone_column)
    keys = [c for i, c in enumerate(sheet.columns) if c and i != phone_at]
    data: dict[str, Any] = {
        "format": FORMAT,
        "region": region,
        "columns": sheet.columns,
        "phone_column": sheet.phone_column,
        "encoding": sheet.encoding,
        "rows": sheet.rows,
        "sample": sheet.sample,
        "errors": sheet.errors,
        "duplicates": sheet.duplicates,
        "keys": keys,
        # One short list per recipient (its line, number, then each value or null when the row
        # was too short to have it): a fraction of the size of a dict per row.
        "recipients": [
            [line, r.to_number, *((r.values or {}).get(k) for k in keys)]
            for line, r in zip(sheet.lines, sheet.recipients, strict=True)
        ],
    }
    partial = record.with_name(record.name + ".partial")
    partial.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    partial.replace(record)  # whole or absent: a crash mid-write leaves no half record to read


def _load(record: Path, region: str) -> Sheet | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("region") != region:
        return None
    keys: list[str] = data["keys"]
    sheet = Sheet(
        columns=data["columns"],
        phone_column=data["phone_column"],
        encoding=data["encoding"],
        rows=data["rows"],
        sample=[(line, cells) for line, cells in data["sample"]],
        errors=[(line, reason) for line, reason in data["errors"]],
        duplicates=[(line, reason) for line, reason in data["duplicates"]],
    )
    for line, phone, *values in data["recipients"]:
        sheet.lines.append(line)
        sheet.recipients.append(
            Recipient(phone, values={k: v for k, v in zip(keys, values, strict=True) if v is not None})
        )
    return sheet
