"""The names RQ jobs are enqueued by: stable dotted paths that survive moves of the code.

A job in Redis names its function by dotted path, and may wait there across a deploy (a retry
backing off, a backlog behind a rate limit). Enqueuers use the constants below, which point at
this module (`sending/queue.py` holds them as strings, importing nothing), so moving a job's
implementation only changes the re-exports here.
"""

from __future__ import annotations

from smsdash.sending.job import send_batch, send_delivery

__all__ = ["send_batch", "send_delivery"]
