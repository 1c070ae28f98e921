"""The Twilio webhooks, driven the way Twilio drives them: signed form POSTs, out of order, repeated.

Signatures are computed with twilio's own RequestValidator for the public URL Twilio would call
(`https://smsdash.example.com/...`); the test client talks to `http://localhost`, so every test
also exercises the BASE_HOST_URL reconstruction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from smsdash import create_app
from smsdash.delivery.optouts import is_opted_out, opted_out_among
from smsdash.delivery.pending import apply_pending
from smsdash.extensions import db
from smsdash.models import Delivery, Event, OptOut, PendingCallback
from smsdash.sending import job as send_job
from smsdash.twilio.error_codes import explain
from smsdash.twilio.messages_api import sender_identity
from smsdash.webhooks import views as webhooks
from tests.fixtures_webhooks import (
    AUTH_TOKEN,
    PUBLIC_BASE,
    callback_params,
    delivery_row,
    events_of,
    inbound_params,
    post_all_at_once,
    sign,
)

STATUS = "/webhooks/twilio/status"
INBOUND = "/webhooks/twilio/inbound"
SID = "SM" + "c" * 32
OUR_NUMBER = "+15005550001"
RECIPIENT = "+15005550006"

Post = Callable[..., TestResponse]


def row_counts(app: Flask) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
            for model in (Event, PendingCallback, OptOut)
        )


def test_valid_callback_is_applied(app: Flask, post_signed: Post, make_delivery: Callable[..., int]) -> None:
    delivery_id = make_delivery(sid=SID)
    response = post_signed(STATUS, callback_params(SID, "sent"), query={"d": delivery_id})
    assert response.status_code == 200
    assert delivery_row(app, delivery_id).status == "sent"
    [event] = events_of(app, delivery_id)
    assert (event.event_type, event.source, event.error_code) == ("sent", "twilio", None)
    assert event.payload is not None and event.payload["MessageSid"] == SID
    assert event.received_at is not None


def test_callback_is_found_by_sid_without_delivery_id(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(status="sent", sid=SID)
    assert post_signed(STATUS, callback_params(SID, "delivered", RawDlrDoneDate="2611262305")).status_code == 200
    delivery = delivery_row(app, delivery_id)
    assert delivery.status == "delivered"
    assert delivery.delivered_at == datetime(2026, 11, 26, 23, 5, tzinfo=UTC)
    assert events_of(app, delivery_id)[0].occurred_at == datetime(2026, 11, 26, 23, 5, tzinfo=UTC)


def test_tampered_param_is_refused_and_writes_nothing(
    app: Flask, client: FlaskClient, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(sid=SID)
    params = callback_params(SID, "failed", ErrorCode="30007")
    signature = sign(f"{PUBLIC_BASE}{STATUS}?d={delivery_id}", params)
    params["ErrorCode"] = "30003"
    response = client.post(f"{STATUS}?d={delivery_id}", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403
    assert delivery_row(app, delivery_id).status == "queued"
    assert row_counts(app) == (0, 0, 0)


def test_wrong_url_is_refused_and_writes_nothing(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(sid=SID)
    signed_for = f"https://attacker.example.net{STATUS}?d={delivery_id}"
    response = post_signed(STATUS, callback_params(SID, "delivered"), query={"d": delivery_id}, signed_url=signed_for)
    assert response.status_code == 403
    other_delivery = f"{PUBLIC_BASE}{STATUS}?d={delivery_id + 1}"
    assert (
        post_signed(
            STATUS, callback_params(SID, "delivered"), query={"d": delivery_id}, signed_url=other_delivery
        ).status_code
        == 403
    )
    assert delivery_row(app, delivery_id).status == "queued"
    assert row_counts(app) == (0, 0, 0)


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_signature_with_non_ascii_characters_is_refused_not_a_server_error(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int], path: str
) -> None:
    """Anyone can post to the webhooks: a header no HMAC could produce gets the 403 every bad
    signature gets, not a 500 from comparing it."""
    delivery_id = make_delivery(sid=SID)
    params = callback_params(SID, "delivered", Body="STOP", From=RECIPIENT, To=OUR_NUMBER)
    response = post_signed(path, params, query={"d": delivery_id}, headers={"X-Twilio-Signature": "sign\xe9d="})
    assert response.status_code == 403
    assert delivery_row(app, delivery_id).status == "queued"
    assert row_counts(app) == (0, 0, 0)


def test_missing_signature_or_token_is_refused_with_a_log_line_without_secrets(
    app: Flask,
    client: FlaskClient,
    post_signed: Post,
    make_delivery: Callable[..., int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivery_id = make_delivery(sid=SID)
    params = callback_params(SID, "sent")
    with caplog.at_level(logging.WARNING, logger="smsdash.webhooks.views"):
        assert client.post(f"{STATUS}?d={delivery_id}", data=params).status_code == 403
        app.config["TWILIO_AUTH_TOKEN"] = ""
        signature = sign(f"{PUBLIC_BASE}{STATUS}?d={delivery_id}", params)
        assert (
            client.post(f"{STATUS}?d={delivery_id}", data=params, headers={"X-Twilio-Signature": signature}).status_code
            == 403
        )
    assert "no X-Twilio-Signature" in caplog.text
    assert "TWILIO_AUTH_TOKEN is not set" in caplog.text
    assert AUTH_TOKEN not in caplog.text and signature not in caplog.text
    assert row_counts(app) == (0, 0, 0)


def _app_like(app: Flask, **overrides: object) -> Flask:
    """A second app over the same database and Redis, with different proxy settings."""
    keys = ("TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "REDIS_URL", "EMBEDDED_REDIS_PATH")
    return create_app(
        {
            **{k: app.config[k] for k in keys},
            "INSTANCE_PATH": app.instance_path,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            **overrides,
        }
    )


@pytest.mark.parametrize("hops, expected", [(1, 200), (0, 403)])
def test_behind_a_proxy_the_forwarded_public_url_is_validated(
    app: Flask, make_delivery: Callable[..., int], hops: int, expected: int
) -> None:
    """Heroku's router: the app gets http on an internal port, Host is the public host,
    X-Forwarded-Proto says https. With no BASE_HOST_URL, only ProxyFix can recover the URL."""
    delivery_id = make_delivery(sid=SID)
    proxied = _app_like(app, PROXY_FIX_HOPS=hops, BASE_HOST_URL="", MAIL_APP_HOST="")
    params = callback_params(SID, "sent")
    url = f"https://public.example.org{STATUS}?d={delivery_id}"
    response = proxied.test_client().post(
        f"{STATUS}?d={delivery_id}",
        data=params,
        base_url="http://10.1.2.3:31337",
        headers={
            "Host": "public.example.org",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "54.1.2.3",
            "X-Twilio-Signature": sign(url, params),
        },
    )
    assert response.status_code == expected
    assert delivery_row(app, delivery_id).status == ("sent" if expected == 200 else "queued")
    with proxied.app_context():
        db.engine.dispose()


STAGING = "https://staging.example.net"  # another deployment on the same Twilio account (same auth token)
FOREIGN_SID = "SM" + "f" * 32


def _post_via(
    app: Flask, params: dict[str, str], signed_for: str, delivery_id: int, base_url: str, **headers: str
) -> TestResponse:
    path = f"{STATUS}?d={delivery_id}"
    return app.test_client().post(
        path, data=params, base_url=base_url, headers={"X-Twilio-Signature": sign(signed_for + path, params), **headers}
    )


@pytest.mark.parametrize("via", ["Host", "X-Forwarded-Host"])
def test_a_callback_replayed_from_another_host_is_refused_and_writes_nothing(
    app: Flask, make_delivery: Callable[..., int], via: str
) -> None:
    """Staging's callback, signed for staging's URL, posted here with staging's host in Host (or,
    through a proxy, X-Forwarded-Host): this app is configured for its own public base, and the
    host a caller names is not evidence of where Twilio sent it."""
    delivery_id = make_delivery(status="sending", sid=None)
    configured = _app_like(app, BASE_HOST_URL=PUBLIC_BASE, PROXY_FIX_HOPS=1 if via == "X-Forwarded-Host" else 0)
    params = callback_params(FOREIGN_SID, "undelivered", ErrorCode="30003")
    if via == "Host":
        response = _post_via(configured, params, STAGING, delivery_id, base_url=STAGING)
    else:
        response = _post_via(
            configured,
            params,
            STAGING,
            delivery_id,
            base_url="http://10.1.2.3:31337",
            **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "staging.example.net", "X-Forwarded-For": "54.1.2.3"},
        )
    assert response.status_code == 403
    delivery = delivery_row(app, delivery_id)
    assert (delivery.status, delivery.external_message_id) == ("sending", None)
    assert row_counts(app) == (0, 0, 0)
    with configured.app_context():
        db.engine.dispose()


def test_hosts_in_twilio_webhook_hosts_are_accepted_besides_the_public_base(
    app: Flask, make_delivery: Callable[..., int]
) -> None:
    """The same app behind a second name (a platform domain, a tunnel) is named explicitly."""
    app.config["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN
    app.config["TWILIO_WEBHOOK_HOSTS"] = ("smsdash.herokuapp.com", "https://tunnel.example.org/smsdash/")
    delivery_id = make_delivery(sid=SID)
    for signed_for, expected in [
        ("https://smsdash.herokuapp.com", 200),
        ("https://tunnel.example.org/smsdash", 200),
        (PUBLIC_BASE, 200),
        (STAGING, 403),
        ("http://smsdash.herokuapp.com", 403),  # Twilio calls https; a bare host means https
    ]:
        response = _post_via(app, callback_params(SID, "sent"), signed_for, delivery_id, base_url="http://localhost")
        assert (signed_for, response.status_code) == (signed_for, expected)
    assert delivery_row(app, delivery_id).status == "sent"


def test_behind_a_proxy_with_a_public_base_the_callback_validates_on_that_base(
    app: Flask, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(sid=SID)
    proxied = _app_like(app, PROXY_FIX_HOPS=1, BASE_HOST_URL=PUBLIC_BASE)
    response = _post_via(
        proxied,
        callback_params(SID, "sent"),
        PUBLIC_BASE,
        delivery_id,
        base_url="http://10.1.2.3:31337",
        **{"Host": "smsdash.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "54.1.2.3"},
    )
    assert response.status_code == 200
    assert delivery_row(app, delivery_id).status == "sent"
    with proxied.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("host_hops, expected", [(1, 200), (0, 403)])
def test_x_forwarded_host_is_believed_only_when_proxy_fix_x_host_says_so(
    app: Flask, make_delivery: Callable[..., int], host_hops: int, expected: int
) -> None:
    """A proxy that rewrites Host and passes the public one in X-Forwarded-Host (no public base
    set). PROXY_FIX_HOPS alone does not trust that header: Heroku's router passes a client's
    X-Forwarded-Host through untouched."""
    delivery_id = make_delivery(sid=SID)
    proxied = _app_like(app, PROXY_FIX_HOPS=1, PROXY_FIX_X_HOST=host_hops, BASE_HOST_URL="", MAIL_APP_HOST="")
    response = _post_via(
        proxied,
        callback_params(SID, "sent"),
        "https://public.example.org",
        delivery_id,
        base_url="http://10.1.2.3:31337",
        **{"X-Forwarded-Host": "public.example.org", "X-Forwarded-Proto": "https", "X-Forwarded-For": "54.1.2.3"},
    )
    assert response.status_code == expected
    assert delivery_row(app, delivery_id).status == ("sent" if expected == 200 else "queued")
    with proxied.app_context():
        db.engine.dispose()


def test_delivered_then_sent_stays_delivered_with_both_events(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(sid=SID)
    assert post_signed(STATUS, callback_params(SID, "delivered"), query={"d": delivery_id}).status_code == 200
    assert post_signed(STATUS, callback_params(SID, "sent"), query={"d": delivery_id}).status_code == 200
    assert delivery_row(app, delivery_id).status == "delivered"
    assert [e.event_type for e in events_of(app, delivery_id)] == ["delivered", "sent"]


def test_the_same_callback_twice_gives_one_event(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(sid=SID)
    for _ in range(2):
        assert post_signed(STATUS, callback_params(SID, "sent"), query={"d": delivery_id}).status_code == 200
    assert [e.event_type for e in events_of(app, delivery_id)] == ["sent"]


def test_callback_before_the_job_stored_the_sid_is_applied_and_records_it(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(status="queued", sid=None)
    assert post_signed(STATUS, callback_params(SID, "sent"), query={"d": delivery_id}).status_code == 200
    delivery = delivery_row(app, delivery_id)
    assert (delivery.status, delivery.external_message_id) == ("sent", SID)


def test_unknown_sid_is_kept_pending_then_applied_when_the_sid_appears(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    assert post_signed(STATUS, callback_params(SID, "delivered")).status_code == 200
    assert post_signed(STATUS, callback_params(SID, "sent"), query={"d": 999999}).status_code == 200
    assert row_counts(app) == (0, 2, 0)
    delivery_id = make_delivery(status="queued", sid=None)
    with app.app_context():  # what the send job does once Twilio accepted the message
        db.session.execute(db.update(Delivery).where(Delivery.id == delivery_id).values(external_message_id=SID))
        assert apply_pending(delivery_id, SID) == 2
        db.session.commit()
        assert apply_pending(delivery_id, SID) == 0
    assert delivery_row(app, delivery_id).status == "delivered"
    assert sorted(e.event_type for e in events_of(app, delivery_id)) == ["delivered", "sent"]


def test_a_callback_parked_while_a_d_callback_stores_the_sid_is_still_applied(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A callback with our delivery id stores the SID (it beat the send job); the Messaging
    # Service's copy of another status (no delivery id) is parked after the first one looked for
    # waiting callbacks but before it committed. PostgreSQL only: SQLite lets one writer at a time.
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite serialises writers: the webhook cannot park a callback mid-commit")
    delivery_id = make_delivery(status="sending", sid=None)
    looked = webhooks.apply_pending
    answers: list[int] = []

    def look_then_another_callback_arrives(found_id: int, sid: str) -> int:
        applied = looked(found_id, sid)

        def post() -> None:  # Twilio's other request, on its own connection and transaction
            with app.app_context():
                answers.append(
                    post_signed(STATUS, callback_params(sid, "delivered"), via=app.test_client()).status_code
                )
                db.session.remove()

        thread = threading.Thread(target=post)
        thread.start()
        thread.join(timeout=30)
        return applied

    monkeypatch.setattr(webhooks, "apply_pending", look_then_another_callback_arrives)
    assert post_signed(STATUS, callback_params(SID, "sent"), query={"d": delivery_id}).status_code == 200
    assert answers == [200]
    delivery = delivery_row(app, delivery_id)
    assert (delivery.status, delivery.external_message_id) == ("delivered", SID)
    assert sorted(e.event_type for e in events_of(app, delivery_id)) == ["delivered", "sent"]


def test_undelivered_30003_shows_its_explanation(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    delivery_id = make_delivery(status="sent", sid=SID)
    params = callback_params(SID, "undelivered", ErrorCode="30003", RawDlrDoneDate="2611262310")
    assert post_signed(STATUS, params, query={"d": delivery_id}).status_code == 200
    delivery = delivery_row(app, delivery_id)
    assert (delivery.status, delivery.error_code) == ("undelivered", 30003)
    assert delivery.error_message == explain(30003).meaning
    assert "unreachable" in delivery.error_message
    [event] = events_of(app, delivery_id)
    assert (event.event_type, event.error_code) == ("undelivered", 30003)


@pytest.mark.parametrize(
    "params, query",
    [
        ({"MessageSid": SID}, {}),
        ({"MessageStatus": "sent"}, {}),
        (callback_params(SID, "teleported"), {}),
        (callback_params(SID, "sent"), {"d": "1; drop table"}),
        (callback_params(SID, "sent"), {"d": "99999999999999999999"}),
        (callback_params(SID, "sent"), {"d": "\u00b2"}),
    ],
)
def test_malformed_callback_is_a_400_and_applies_nothing(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int], params: dict[str, str], query: dict[str, str]
) -> None:
    delivery_id = make_delivery(sid=SID)
    assert post_signed(STATUS, params, query=query).status_code == 400
    assert delivery_row(app, delivery_id).status == "queued"
    assert row_counts(app) == (0, 0, 0)


def test_50_concurrent_callbacks_leave_a_consistent_state(app: Flask, make_delivery: Callable[..., int]) -> None:
    """Repeated and out-of-order callbacks at once, while the delivery has no SID yet: the
    delivery ends in the highest status, its SID is stored, and each status is one event."""
    app.config["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN
    delivery_id = make_delivery(status="queued", sid=None)
    statuses = ["sending", "sent", "delivered", "read", "sent"] * 10
    answers = post_all_at_once(app, SID, delivery_id, statuses)
    assert answers == [200] * len(statuses)
    delivery = delivery_row(app, delivery_id)
    assert (delivery.status, delivery.external_message_id) == ("read", SID)
    assert delivery.sent_at is not None and delivery.delivered_at is not None
    assert sorted(e.event_type for e in events_of(app, delivery_id)) == ["delivered", "read", "sending", "sent"]


@pytest.mark.parametrize("keyword", ["STOP", "stop", " Unsubscribe ", "STOPALL", "cancel", "End", "QUIT"])
def test_stop_reply_records_an_opt_out_and_answers_empty_twiml(app: Flask, post_signed: Post, keyword: str) -> None:
    response = post_signed(INBOUND, inbound_params(keyword))
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert response.get_data(as_text=True) == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    with app.app_context():
        assert is_opted_out(RECIPIENT, OUR_NUMBER)


def test_start_reply_lifts_the_opt_out_and_other_text_changes_nothing(app: Flask, post_signed: Post) -> None:
    post_signed(INBOUND, inbound_params("STOP"))
    assert post_signed(INBOUND, inbound_params("please stop texting me")).status_code == 200
    with app.app_context():
        assert is_opted_out(RECIPIENT, OUR_NUMBER)
    assert post_signed(INBOUND, inbound_params("start")).status_code == 200
    with app.app_context():
        assert not is_opted_out(RECIPIENT, OUR_NUMBER)


@pytest.mark.parametrize(
    "body, opt_out_type, opted_out_before, opted_out_after",
    [
        ("ARRET", "STOP", False, True),  # a custom opt-out keyword (Advanced Opt-Out), in French
        ("REJOINDRE", "START", True, False),  # a custom opt-in keyword lifts the opt-out
        ("INFO", "HELP", True, True),  # help lifts nothing
        ("END", "HELP", False, False),  # END made a help keyword: not an opt-out there
    ],
)
def test_twilios_opt_out_type_decides_over_the_keyword_rule(
    app: Flask, post_signed: Post, body: str, opt_out_type: str, opted_out_before: bool, opted_out_after: bool
) -> None:
    service = "MG" + "e" * 32
    if opted_out_before:
        post_signed(INBOUND, inbound_params("STOP", MessagingServiceSid=service))
    params = inbound_params(body, MessagingServiceSid=service, OptOutType=opt_out_type)
    assert post_signed(INBOUND, params).status_code == 200
    with app.app_context():
        assert is_opted_out(RECIPIENT, service) == opted_out_after
        assert is_opted_out(RECIPIENT, OUR_NUMBER) == opted_out_after


def test_a_reply_with_no_opt_out_type_that_is_not_a_keyword_changes_nothing(app: Flask, post_signed: Post) -> None:
    assert post_signed(INBOUND, inbound_params("ARRET")).status_code == 200
    assert row_counts(app) == (0, 0, 0)


def test_stop_through_a_messaging_service_blocks_both_the_number_and_the_service(app: Flask, post_signed: Post) -> None:
    service = "MG" + "e" * 32
    post_signed(INBOUND, inbound_params("STOP", MessagingServiceSid=service))
    with app.app_context():
        assert is_opted_out(RECIPIENT, service) and is_opted_out(RECIPIENT, OUR_NUMBER)


def test_unsigned_inbound_is_refused(app: Flask, client: FlaskClient, post_signed: Post) -> None:
    assert client.post(INBOUND, data=inbound_params("STOP")).status_code == 403
    assert row_counts(app) == (0, 0, 0)


def test_a_stop_reply_blocks_the_next_send_to_that_number(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    """Through the send job: the delivery is canceled before any request to Twilio."""
    app.config.update(TWILIO_FROM_NUMBER=OUR_NUMBER, TWILIO_MESSAGING_SERVICE_SID="")
    delivery_id = make_delivery(to=RECIPIENT, status="queued")
    assert post_signed(INBOUND, inbound_params("STOP")).status_code == 200
    with app.app_context():
        assert opted_out_among([RECIPIENT, "+15005550009"], sender_identity(app.config)) == {RECIPIENT}
        assert send_job.send_delivery(delivery_id) == {"opted_out": 1}
    delivery = delivery_row(app, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.external_message_id) == ("canceled", 0, None)


def test_21610_failure_records_an_opt_out(app: Flask, post_signed: Post, make_delivery: Callable[..., int]) -> None:
    delivery_id = make_delivery(status="sent", sid=SID, to=RECIPIENT)
    params = callback_params(SID, "failed", ErrorCode="21610", To=RECIPIENT, From=OUR_NUMBER)
    assert post_signed(STATUS, params, query={"d": delivery_id}).status_code == 200
    assert delivery_row(app, delivery_id).status == "failed"
    with app.app_context():
        assert is_opted_out(RECIPIENT, OUR_NUMBER)


def test_a_21610_applied_from_the_pending_inbox_records_the_opt_out(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int]
) -> None:
    # Issue 12, item 8: a Messaging Service's own callback (no delivery id) came before the SID
    # was stored, so it waited in the inbox; applied from there, its 21610 is still an opt-out.
    params = callback_params(SID, "failed", ErrorCode="21610", To=RECIPIENT, From=OUR_NUMBER)
    assert post_signed(STATUS, params).status_code == 200
    delivery_id = make_delivery(status="sending", to=RECIPIENT)
    with app.app_context():  # what the send job does once Twilio accepted the message
        db.session.execute(db.update(Delivery).where(Delivery.id == delivery_id).values(external_message_id=SID))
        db.session.commit()
        assert apply_pending(delivery_id, SID) == 1
        db.session.commit()
        assert is_opted_out(RECIPIENT, OUR_NUMBER)
    assert (delivery_row(app, delivery_id).status, delivery_row(app, delivery_id).error_code) == ("failed", 21610)


def test_a_callback_whose_sid_another_delivery_holds_is_applied_without_it(
    app: Flask, post_signed: Post, make_delivery: Callable[..., int], caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 12, item 7: the SID is unique, and another delivery already holds this one (a look-up
    # adopted it). The callback names this delivery under Twilio's signature, so its status is
    # about this recipient: it is applied without the SID, logged, and answered 200, not 500.
    holder = make_delivery(status="sent", sid=SID)
    delivery_id = make_delivery(status="sending", sid=None)
    with caplog.at_level(logging.WARNING, logger="smsdash"):
        for status in ("sent", "delivered"):
            assert post_signed(STATUS, callback_params(SID, status), query={"d": delivery_id}).status_code == 200
    row, holder_row = delivery_row(app, delivery_id), delivery_row(app, holder)
    assert (row.status, row.external_message_id) == ("delivered", None)
    assert (holder_row.status, holder_row.external_message_id) == ("sent", SID)
    assert [e.event_type for e in events_of(app, delivery_id)] == ["sent", "delivered"]
    assert events_of(app, holder) == []
    assert any(f"delivery {delivery_id}" in m and f"delivery {holder}" in m for m in caplog.messages), caplog.messages


def test_operators_can_list_old_unmatched_callbacks(app: Flask, post_signed: Post) -> None:
    assert post_signed(STATUS, callback_params(SID, "delivered", To=RECIPIENT)).status_code == 200
    result = app.test_cli_runner().invoke(args=["webhooks", "pending", "--older-than", "0"])
    assert result.exit_code == 0, result.output
    assert f"{SID}  delivered  to {RECIPIENT}" in result.output
    assert "1 unmatched callback(s) older than 0 min." in result.output
    recent = app.test_cli_runner().invoke(args=["webhooks", "pending"])
    assert SID not in recent.output and "0 unmatched" in recent.output
