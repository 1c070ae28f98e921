"""The one list of periodic tasks the worker's scheduler runs (Redash's `tasks/schedule.py`).

Each is a plain function of the feature it serves; this module only says how often. Every task
is idempotent and reads the database for its work, so a run missed (no worker up) or doubled
(a lock handed over) costs nothing but time.
"""

from __future__ import annotations

from flask import Flask

from smsdash.compose.uploads import SWEEP_EVERY_SECONDS as UPLOADS_SWEEP_EVERY_SECONDS
from smsdash.compose.uploads import sweep_stale as sweep_stale_uploads
from smsdash.delivery.pending import sweep as sweep_pending
from smsdash.schedules.quiet_hours import QuietHours
from smsdash.schedules.release import RELEASE_EVERY_SECONDS, release_due
from smsdash.sending.queue import SWEEP_EVERY_SECONDS, sweep_unenqueued
from smsdash.sending.reconciler import interval_seconds, reconcile_periodic
from smsdash.worker import periodic


def init_app(app: Flask) -> None:
    QuietHours.parse(app.config.get("QUIET_HOURS"))  # a malformed QUIET_HOURS stops the app at start
    # Scheduled deliveries whose time has come: queued and enqueued.
    periodic.register(app, release_due, seconds=RELEASE_EVERY_SECONDS)
    # Deliveries composed while Redis was down: enqueued once it is back.
    periodic.register(app, sweep_unenqueued, seconds=SWEEP_EVERY_SECONDS)
    # Callbacks that arrived before their SID was stored: applied once it is.
    periodic.register(app, sweep_pending, seconds=SWEEP_EVERY_SECONDS)
    # Deliveries whose callbacks never came, and sends a dead worker left behind.
    periodic.register(app, reconcile_periodic, seconds=interval_seconds(app.config))
    # Spreadsheets uploaded but never sent: deleted once SPREADSHEET_KEEP_HOURS old.
    periodic.register(app, sweep_stale_uploads, seconds=UPLOADS_SWEEP_EVERY_SECONDS)
