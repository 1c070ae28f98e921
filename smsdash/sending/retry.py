"""The dashboard's Retry button: a new round of attempts for a delivery Twilio never accepted."""

from __future__ import annotations

from sqlalchemy import update

from smsdash.audit.record import record
from smsdash.delivery.timeline import record_event
from smsdash.extensions import db, rows_changed
from smsdash.models import Delivery, utcnow
from smsdash.sending import queue as send_queue
from smsdash.twilio.error_codes import explain


def can_retry(delivery: Delivery) -> bool:
    """True for a delivery Twilio never accepted (no SID) that failed for a reason a later
    attempt can fix: transient errors that ran out of attempts, or a retryable error code."""
    if delivery.status != "failed" or delivery.external_message_id:
        return False
    return delivery.error_code is None or explain(delivery.error_code).retryable


def retry_delivery(delivery_id: int) -> bool:
    """Start a new attempt at a failed delivery (the dashboard's Retry button); commits.

    The one way out of `failed`: a delivery Twilio never accepted has no SID, so no callback
    can ever describe it, and reopening it cannot contradict anything Twilio said. It goes back
    to `queued` (a `queued` event says who asked) and through the normal send path, with its
    own attempts and events, and the audit log says who asked, in the same commit. Returns False
    when the delivery cannot be retried."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or not can_retry(delivery):
        return False
    details = {"message_id": delivery.message_id, "to": delivery.to_number, "error_code": delivery.error_code}
    reopened = (
        rows_changed(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == "failed", Delivery.external_message_id.is_(None))
            .values(
                status="queued",
                error_code=None,
                error_message=None,
                failed_at=None,
                enqueued_at=None,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        == 1
    )
    if not reopened:
        db.session.rollback()
        return False
    record_event(delivery_id, "queued", source="app", detail="retry requested by an operator")
    record("delivery.retry", "delivery", delivery_id, details=details)
    db.session.commit()
    send_queue.enqueue_first_attempts([delivery_id])
    return True
