"""Uploads never confirmed are deleted by a periodic task once SPREADSHEET_KEEP_HOURS old."""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from werkzeug.datastructures import FileStorage

from smsdash.compose import checked_rows, uploads
from smsdash.worker import periodic

HOUR = 3600


def _upload(app: Flask) -> tuple[str, Path]:
    """An upload checked once, so its rows record lies beside it, as the page leaves it."""
    with app.app_context():
        token, _ = uploads.keep(FileStorage(io.BytesIO(b"phone\n+14155550101\n"), "staff.csv"))
        path = uploads.path_for(token)
        assert path is not None
        checked_rows.rows_for(token, path, "US")
    return token, path


def test_an_abandoned_upload_is_deleted_once_past_the_bound_and_logged_once(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    _, path = _upload(app)
    folder = path.parent
    assert len(list(folder.iterdir())) == 2  # the upload and its rows record
    caplog.set_level(logging.INFO, logger="smsdash.compose.uploads")
    with time_machine.travel(time.time() + 23 * HOUR, tick=False), app.app_context():
        assert uploads.sweep_stale() == 0
    assert len(list(folder.iterdir())) == 2 and not caplog.records  # nothing deleted, nothing logged
    with time_machine.travel(time.time() + 25 * HOUR, tick=False), app.app_context():
        assert uploads.sweep_stale() == 2
    assert not list(folder.iterdir())
    assert [r.getMessage() for r in caplog.records] == ["spreadsheet uploads: deleted 2 files older than 24.0 hours"]


def test_a_recent_upload_survives_beside_an_old_one(app: Flask) -> None:
    _, old = _upload(app)
    _, new = _upload(app)
    written = time.time() - 25 * HOUR  # the file system's clock is not time-machine's: age it
    for path in old.parent.glob(f"{old.name}*"):
        os.utime(path, (written, written))
    with app.app_context():
        assert uploads.sweep_stale() == 2
    assert not old.exists() and new.exists() and len(list(new.parent.iterdir())) == 2


def test_the_sweep_is_a_periodic_task(app: Flask) -> None:
    assert "smsdash.compose.uploads.sweep_stale" in {task.name for task in periodic.tasks(app)}
