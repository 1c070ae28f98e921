"""Making two transactions really overlap on PostgreSQL, for the tests of a race.

Starting two threads at once is not enough: the first may commit before the second begins. So
the first to run a given statement is held, after it ran (its row locks taken), until another
backend is seen waiting on a lock in pg_stat_activity; only then does it go on and commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event, text

from smsdash.extensions import db


@pytest.fixture
def on_postgres(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("row locks and concurrent transactions are PostgreSQL's")


@contextmanager
def first_holds_until_another_waits(
    engine: Engine, statement: str, *, waiting_query_like: str | None = None, what: str
) -> Iterator[None]:
    """Hold the first statement starting with `statement` until a backend waits on a lock:
    one running a query LIKE `waiting_query_like`, or, without it, any in this database (a
    backend's reported query text can lag behind the statement it is running). Fails, naming
    `what`, if none ever waits."""
    where = "query LIKE :like" if waiting_query_like else "datname = current_database()"
    first = threading.Lock()

    def hold(conn: Any, cursor: Any, executed: str, *args: Any) -> None:
        if not executed.startswith(statement) or not first.acquire(blocking=False):
            return
        with engine.connect() as watcher:
            for _ in range(1000):
                waiting = watcher.execute(
                    text(f"SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND {where}"),
                    {"like": waiting_query_like},
                ).scalar()
                # PostgreSQL reads pg_stat_activity once per transaction: end it, or every later
                # look sees the first one's answer and a backend that began waiting since is missed.
                watcher.rollback()
                if waiting:
                    return
                time.sleep(0.01)
        raise AssertionError(f"{what} never waited on the first's locks")

    event.listen(engine, "after_cursor_execute", hold)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", hold)


def run_at_once(app: Flask, calls: list[Callable[[], None]], timeout: float = 60) -> None:
    """Run each call in its own thread and app context, all released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], None]) -> None:
        with app.app_context():
            barrier.wait()
            call()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
