"""Uploaded spreadsheets kept between "check" and "send", named by a random token.

The operator confirms a spreadsheet send on a second request; keeping the file on disk (under
the instance folder) means the confirm does not upload it again, the body can be edited and
re-checked against the same rows, and the file is never held in memory or in the session.
"""

from __future__ import annotations

import glob
import logging
import re
import secrets
import time
from pathlib import Path

from flask import current_app
from werkzeug.datastructures import FileStorage

log = logging.getLogger(__name__)

# How often the worker looks for uploads to delete (smsdash/schedule.py).
SWEEP_EVERY_SECONDS = 3600

_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}\.(csv|xlsx|txt)")


def _folder() -> Path:
    folder = Path(current_app.instance_path) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def keep(upload: FileStorage) -> tuple[str, int]:
    """Stream the upload to disk; its token and size in bytes."""
    name = (upload.filename or "").lower()
    suffix = "xlsx" if name.endswith((".xlsx", ".xlsm")) else "txt" if name.endswith(".txt") else "csv"
    token = f"{secrets.token_urlsafe(24)}.{suffix}"
    path = _folder() / token
    upload.save(path)
    return token, path.stat().st_size


def path_for(token: str) -> Path | None:
    """The kept file for `token`, or None when the token is malformed or its file is gone."""
    if not _TOKEN.fullmatch(token):
        return None
    path = _folder() / token
    return path if path.is_file() else None


def discard(token: str) -> None:
    """Forget an upload (sent, or replaced by another file) and what was kept beside it."""
    path = path_for(token)
    if path is not None:
        for kept in path.parent.glob(f"{glob.escape(path.name)}*"):
            kept.unlink(missing_ok=True)


def sweep_stale() -> int:
    """Periodic task: delete uploads older than SPREADSHEET_KEEP_HOURS, and what was kept beside
    them; the number of files deleted.

    An upload is kept until its send is confirmed, so one checked and then abandoned (or whose
    check the operator never finished) would stay on disk for ever, holding a spreadsheet of
    people's numbers. Age is the file's last write: a file re-checked recently is kept."""
    cutoff = time.time() - float(current_app.config["SPREADSHEET_KEEP_HOURS"]) * 3600
    deleted = 0
    for path in _folder().iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
        except FileNotFoundError:  # confirmed (and discarded) by a request meanwhile
            continue
    if deleted:
        log.info(
            "spreadsheet uploads: deleted %d files older than %s hours",
            deleted,
            current_app.config["SPREADSHEET_KEEP_HOURS"],
        )
    return deleted
