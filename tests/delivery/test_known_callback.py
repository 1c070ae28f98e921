"""The usual callback (a known delivery with its SID): on PostgreSQL one statement, elsewhere the
general path. Both must leave the same rows, so these tests run on either database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from werkzeug.test import TestResponse

from smsdash.delivery.callbacks import parse_status_callback
from smsdash.delivery.known_callback import apply_known
from smsdash.extensions import db
from tests.fixtures_webhooks import AUTH_TOKEN, callback_params, delivery_row, events_of, post_all_at_once

STATUS = "/webhooks/twilio/status"
SID = "SM" + "e" * 32
Post = Callable[..., TestResponse]


def test_skipped_steps_late_and_repeated_callbacks(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    """read first (carrier time fills sent_at and delivered_at), then a late delivered (kept as an
    event, moves nothing), then read again (adds nothing)."""
    delivery_id = make_delivery(status="queued", sid=SID)
    read = callback_params(SID, "read", RawDlrDoneDate="2611262305")
    assert post_signed(STATUS, read, query={"d": delivery_id}).status_code == 200
    late = callback_params(SID, "delivered", RawDlrDoneDate="2611262304")
    assert post_signed(STATUS, late, query={"d": delivery_id}).status_code == 200
    assert post_signed(STATUS, read, query={"d": delivery_id}).status_code == 200

    delivery = delivery_row(app, delivery_id)
    carrier = datetime(2026, 11, 26, 23, 5, tzinfo=UTC)
    assert (delivery.status, delivery.sent_at, delivery.delivered_at) == ("read", carrier, carrier)
    assert delivery.failed_at is None and delivery.error_code is None
    events = events_of(app, delivery_id)
    assert [(e.event_type, e.source, e.occurred_at) for e in events] == [
        ("read", "twilio", carrier),
        ("delivered", "twilio", datetime(2026, 11, 26, 23, 4, tzinfo=UTC)),
    ]
    assert events[0].payload == read and events[0].received_at is not None
    assert events[0].dedupe_key == "ext:read:"


def test_an_early_status_after_a_later_one_is_kept_as_history(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    """A Messaging Service reports `queued` too, and it can arrive after `sent`. Nothing leads to
    `queued`, so its move matches no status; on PostgreSQL its one-statement path answered 500."""
    delivery_id = make_delivery(status="sent", sid=SID)
    for status in ("queued", "accepted"):
        assert post_signed(STATUS, callback_params(SID, status), query={"d": delivery_id}).status_code == 200
    assert delivery_row(app, delivery_id).status == "sent"
    assert [e.event_type for e in events_of(app, delivery_id)] == ["queued", "accepted"]


def test_a_failure_records_its_code_meaning_and_time(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(status="sent", sid=SID)
    params = callback_params(SID, "failed", ErrorCode="30006")
    assert post_signed(STATUS, params, query={"d": delivery_id}).status_code == 200
    delivery = delivery_row(app, delivery_id)
    assert (delivery.status, delivery.error_code) == ("failed", 30006)
    assert delivery.error_message and delivery.failed_at is not None and delivery.delivered_at is None
    [event] = events_of(app, delivery_id)
    assert (event.event_type, event.error_code, event.dedupe_key) == ("failed", 30006, "ext:failed:30006")


def test_50_concurrent_callbacks_for_a_known_delivery(app: Flask, make_delivery: Callable[..., int]) -> None:
    """All at once, repeated and out of order, for a delivery that has its SID (on PostgreSQL every
    one takes the one-statement path): the highest status wins and each status is one event."""
    app.config["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN
    delivery_id = make_delivery(status="queued", sid=SID)
    statuses = ["sent", "delivered", "sending", "read", "delivered"] * 10
    answers = post_all_at_once(app, SID, delivery_id, statuses)
    assert answers == [200] * len(statuses)
    delivery = delivery_row(app, delivery_id)
    assert delivery.status == "read" and delivery.sent_at is not None and delivery.delivered_at is not None
    assert sorted(e.event_type for e in events_of(app, delivery_id)) == ["delivered", "read", "sending", "sent"]


@pytest.fixture
def on_postgres(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the one-statement path is PostgreSQL's")


def test_it_writes_nothing_and_defers_when_the_delivery_has_no_sid(
    app: Flask, on_postgres: None, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(status="queued", sid=None)
    callback = parse_status_callback(callback_params(SID, "sent"))
    with app.app_context():
        assert apply_known(db.engine, callback, delivery_id) is None
        assert apply_known(db.engine, callback, None) is None  # by SID: none stored yet
    assert delivery_row(app, delivery_id).status == "queued"
    assert events_of(app, delivery_id) == []


def test_a_dropped_database_connection_is_replaced_and_the_callback_applied(
    app: Flask, on_postgres: None, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    """Without pool_pre_ping a pooled connection can be dead (database restart): the callback
    must still be applied and answered 200, not lost to a 500."""
    first, second = make_delivery(sid=SID), make_delivery(sid=SID.replace("e", "f"))
    assert post_signed(STATUS, callback_params(SID, "sent"), query={"d": first}).status_code == 200
    with app.app_context():  # kill exactly the backends idling in this app's pool
        held = [db.engine.raw_connection() for _ in range(db.engine.pool.checkedin())]
        pids = [connection.driver_connection.info.backend_pid for connection in held]  # type: ignore[union-attr]
        for connection in held:
            connection.close()
        admin_engine = create_engine(db.engine.url)
        with admin_engine.connect() as admin:
            killed = sum(
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() for pid in pids
            )
        admin_engine.dispose()
    assert killed >= 1 and killed == len(pids)
    other_sid = SID.replace("e", "f")
    assert post_signed(STATUS, callback_params(other_sid, "delivered"), query={"d": second}).status_code == 200
    assert delivery_row(app, second).status == "delivered"
    assert [e.event_type for e in events_of(app, second)] == ["delivered"]


def test_an_error_code_on_a_repeated_failure_fills_the_one_the_first_copy_lacked(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    """A failure first reported without ErrorCode, then again with it: the delivery gets the code,
    its meaning and the time of the first report; a third copy with another code changes nothing."""
    delivery_id = make_delivery(status="sent", sid=SID)
    first = callback_params(SID, "undelivered", RawDlrDoneDate="2611262305")
    assert post_signed(STATUS, first, query={"d": delivery_id}).status_code == 200
    coded = callback_params(SID, "undelivered", ErrorCode="30003", RawDlrDoneDate="2611262306")
    assert post_signed(STATUS, coded, query={"d": delivery_id}).status_code == 200
    other = callback_params(SID, "undelivered", ErrorCode="30005", RawDlrDoneDate="2611262307")
    assert post_signed(STATUS, other, query={"d": delivery_id}).status_code == 200
    delivery = delivery_row(app, delivery_id)
    assert (delivery.status, delivery.error_code) == ("undelivered", 30003)
    assert delivery.error_message and delivery.failed_at == datetime(2026, 11, 26, 23, 5, tzinfo=UTC)
    assert [e.error_code for e in events_of(app, delivery_id)] == [None, 30003, 30005]
