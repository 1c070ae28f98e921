"""The one work queue: its name and how to reach it on the app's Redis clients."""

from __future__ import annotations

from flask import Flask
from rq import Queue

from smsdash.redis_conn import get_redis

QUEUE_NAME = "smsdash"


def get_queue(app: Flask | None = None, *, fail_fast: bool = False) -> Queue:
    """The one work queue, on the app's patient Redis client (or its fail-fast one)."""
    return Queue(QUEUE_NAME, connection=get_redis(app, fail_fast=fail_fast))
