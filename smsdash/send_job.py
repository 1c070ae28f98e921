"""Deprecated path of the send jobs, for jobs queued before the move; remove after one release."""

from smsdash.jobs import send_batch, send_delivery  # noqa: F401
