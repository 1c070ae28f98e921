"""The worker's log: what happened, not the scheduler's routine.

RQ logs four INFO lines for every job, so the periodic tasks (a few every 5 s) buried the
`make run` output: the URL, the demo password and every real event. At LOG_LEVEL=info the
routine lines of periodic tasks are dropped (the tasks log themselves when they did something),
as are RQ's per-job "Job OK" and "result is kept" lines; send jobs keep their start and
completion lines. LOG_LEVEL=debug shows everything.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

# RQ 3's per-job INFO lines, by their format strings (rq/worker/base.py).
_STARTED = "Worker %s: %s: %s (%s)"
_COMPLETED = "Successfully completed %s job in %ss on worker %s"
_ALWAYS_ROUTINE = ("result is kept for", "result discarded immediately", "Job OK")


class RoutineJobLines(logging.Filter):
    """Drops RQ's routine per-job lines for the periodic tasks named in `periodic`."""

    def __init__(self, periodic: Iterable[str]) -> None:
        super().__init__()
        self.periodic = tuple(f"{name}(" for name in periodic)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        if any(part in message for part in _ALWAYS_ROUTINE):
            return False
        if record.msg in (_STARTED, _COMPLETED):
            return not any(name in message for name in self.periodic)
        return True


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever sys.stderr is when a line is logged, not when it was made."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure(level: str, periodic: Iterable[str]) -> None:
    """Set the worker's logging for LOG_LEVEL `level`: smsdash's own loggers print to stderr
    (they have no handler otherwise, so their INFO lines were lost), RQ's are filtered."""
    numeric = getattr(logging, level.upper())
    app_log = logging.getLogger("smsdash")
    if not app_log.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        app_log.addHandler(handler)
    app_log.setLevel(numeric)
    rq_log = logging.getLogger("rq.worker")
    for old in [f for f in rq_log.filters if isinstance(f, RoutineJobLines)]:
        rq_log.removeFilter(old)
    if numeric > logging.DEBUG:
        rq_log.addFilter(RoutineJobLines(periodic))
