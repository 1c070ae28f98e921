"""The messages list and message page: roll-ups, filters, search, timelines, live polling, export, retry."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.delivery.status import apply_status
from smsdash.delivery.timeline import record_event
from smsdash.extensions import db
from smsdash.models import Contact, Delivery, Event, Message
from tests.conftest import csrf_token_from

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def _message(app: Flask, statuses: list[str], body: str = "Hello") -> tuple[int, list[int]]:
    """A message with one delivery per status, numbers +1415555000<i>; the first has a contact."""
    with app.app_context():
        message = Message(body=body, recipient_count=len(statuses))
        db.session.add(message)
        db.session.flush()
        contact = db.session.scalar(select(Contact).where(Contact.phone == "+14155550000"))
        if contact is None:
            contact = Contact(name="Ada Lovelace", phone="+14155550000")
            db.session.add(contact)
            db.session.flush()
        ids = []
        for i, status in enumerate(statuses):
            d = Delivery(
                message_id=message.id,
                to_number=f"+1415555{i:04d}",
                status=status,
                body=message.body,
                contact_id=contact.id if i == 0 else None,
            )
            db.session.add(d)
            db.session.flush()
            ids.append(d.id)
        db.session.commit()
        return message.id, ids


def _move(app: Flask, delivery_id: int, status: str, **kwargs: object) -> None:
    with app.app_context():
        apply_status(delivery_id, status, source=kwargs.pop("source", "twilio"), **kwargs)  # type: ignore[arg-type]
        db.session.commit()


def test_root_shows_the_messages_list(app: Flask, logged_in: FlaskClient) -> None:
    _message(app, ["queued"], body="first one")
    response = logged_in.get("/")
    assert response.status_code == 200 and "first one" in response.get_data(as_text=True)


def test_messages_list_newest_first_with_rollups(app: Flask, logged_in: FlaskClient) -> None:
    _message(app, ["delivered", "failed"], body="older")
    _message(app, ["queued", "sent", "delivered"], body="newer")
    html = logged_in.get("/messages").get_data(as_text=True)
    assert html.index("newer") < html.index("older")
    assert 'data-status="delivered"><span class="count">1</span>' in html
    assert 'id="list-poller"' in html and 'hx-trigger="every 2s"' in html  # one message is in flight


def test_messages_list_stops_polling_when_all_final(app: Flask, logged_in: FlaskClient) -> None:
    _message(app, ["delivered", "failed"])
    assert 'id="list-poller"' not in logged_in.get("/messages").get_data(as_text=True)


def test_messages_list_poll(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["queued", "sent"])
    html = logged_in.get("/messages").get_data(as_text=True)
    poll_url = re.search(r'id="list-poller" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert logged_in.get(poll_url).status_code == 204
    _move(app, ids[1], "delivered")
    changed = logged_in.get(poll_url).get_data(as_text=True)
    assert f'id="rollup-{mid}"' in changed and 'hx-swap-oob="innerHTML"' in changed
    _move(app, ids[0], "failed", source="job", error_code=21211)
    final = logged_in.get(poll_url).get_data(as_text=True)
    assert 'id="list-poller"></div>' in final  # no trigger: polling stops


def test_message_page_rollup_table_and_no_tracking_note(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["queued", "sent", "delivered", "undelivered", "failed"])
    _move(app, ids[4], "failed", source="job", error_code=21211)  # already failed: records the event only
    with app.app_context():
        db.session.get(Delivery, ids[4]).error_code = 21211
        db.session.commit()
    response = logged_in.get(f"/messages/{mid}")
    html = response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]
    for status in ("queued", "sent", "delivered", "undelivered", "failed"):
        assert f'<span class="badge" data-status="{status}">{status}</span>' in html
    assert "Ada Lovelace" in html
    assert "The recipient&#39;s phone number is not valid." in html
    assert "SMS has no open or click tracking" in html
    assert 'aria-valuenow="3"' in html and 'aria-valuemax="5"' in html
    assert 'id="poller" hx-get=' in html


def test_message_page_filter_search_and_pagination(app: Flask, logged_in: FlaskClient) -> None:
    mid, _ = _message(app, ["delivered"] * 60 + ["failed"] * 3)
    first = logged_in.get(f"/messages/{mid}").get_data(as_text=True)
    assert "1–50 of 63" in first and "+14155550050" not in first
    second = logged_in.get(f"/messages/{mid}?page=2").get_data(as_text=True)
    assert "+14155550050" in second and "51–63 of 63" in second
    failed = logged_in.get(f"/messages/{mid}?status=failed", headers={"HX-Request": "true", "HX-Target": "recipients"})
    text = failed.get_data(as_text=True)
    assert "<html" not in text and text.count('data-status="failed">') == 3 and "+14155550060" in text
    by_name = logged_in.get(f"/messages/{mid}?q=lovelace").get_data(as_text=True)
    assert "+14155550000" in by_name and "+14155550001" not in by_name
    by_number = logged_in.get(f"/messages/{mid}?q=(415)+555-0061").get_data(as_text=True)
    assert "+14155550061" in by_number and "1–1 of 1" not in by_number and "+14155550001" not in by_number
    assert "No recipient matches" in logged_in.get(f"/messages/{mid}?q=nobody").get_data(as_text=True)
    assert logged_in.get("/messages/99999").status_code == 404


def _poll_url(html: str) -> str:
    return re.search(r'id="poller" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")


def test_poll_answers_204_when_unchanged_and_swaps_what_changed(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["queued", "sent"])
    url = _poll_url(logged_in.get(f"/messages/{mid}").get_data(as_text=True))
    shown = f"&shown={ids[0]},{ids[1]}&open={ids[1]}"
    assert logged_in.get(url + shown).status_code == 204
    _move(app, ids[1], "delivered", occurred_at=T0)
    changed = logged_in.get(url + shown).get_data(as_text=True)
    assert f'id="rollup-{mid}" class="rollup" hx-swap-oob="innerHTML"' in changed
    assert f'<div id="st-{ids[1]}" class="status-cell" hx-swap-oob="innerHTML">' in changed
    assert f'<div id="tl-{ids[1]}" hx-swap-oob="innerHTML">' in changed and "from Twilio callback" in changed
    assert 'hx-trigger="every 2s"' in changed  # ids[0] is still queued
    new_url = _poll_url(changed)
    assert logged_in.get(new_url + shown).status_code == 204
    _move(app, ids[0], "failed", source="job", error_code=30003)
    final = logged_in.get(new_url + shown).get_data(as_text=True)
    assert "hx-trigger" not in final.split("</div>")[0]  # the poller comes back without a trigger
    assert 'data-status="failed"' in final
    assert logged_in.get("/messages/99999/poll?v=x").status_code == 404


def test_timeline_shows_sources_times_gaps_and_error_help(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["queued"])
    with app.app_context():
        record_event(ids[0], "queued", source="app")
        db.session.commit()
    _move(app, ids[0], "sent", source="job", sid="SM" + "a" * 32)
    _move(app, ids[0], "undelivered", occurred_at=T0 + timedelta(seconds=4.2), error_code=30003)
    with app.app_context():  # pin our received times: the gaps are measured on our clock
        for event, at in zip(
            db.session.scalars(select(Event).order_by(Event.id)),
            (T0 - timedelta(seconds=1), T0, T0 + timedelta(seconds=4.2)),
            strict=True,
        ):
            event.received_at = at
        db.session.commit()
    html = logged_in.get(f"/messages/{mid}/deliveries/{ids[0]}/timeline").get_data(as_text=True)
    assert "from send job" in html and "from Twilio callback" in html
    assert "undelivered 4.2 s after sent" in html
    assert "2026-11-26 12:00:04.2 UTC" in html  # carrier time
    assert "sent 1.0 s after queued" in html
    assert 'Error <a href="https://www.twilio.com/docs/api/errors/30003"' in html
    assert "What to do:" in html
    assert f'name="open" value="{ids[0]}"' in html
    assert logged_in.get(f"/messages/{mid}/deliveries/99999/timeline").status_code == 404


def test_csv_export(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["delivered", "failed"])
    with app.app_context():
        d = db.session.get(Delivery, ids[1])
        d.error_code = 21211
        db.session.commit()
    response = logged_in.get(f"/messages/{mid}/deliveries.csv")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["to_number"], r["status"], r["error_code"]) for r in rows] == [
        ("+14155550000", "delivered", ""),
        ("+14155550001", "failed", "21211"),
    ]
    assert rows[0]["contact_name"] == "Ada Lovelace"
    assert rows[1]["error_meaning"] == "The recipient's phone number is not valid."
    assert rows[0]["created_at"].startswith("20")


def test_retry_button_only_for_retryable_failures(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["failed", "failed", "undelivered"])
    with app.app_context():
        for did, code in zip(ids, (20429, 21211, 30003), strict=True):
            db.session.get(Delivery, did).error_code = code
        db.session.commit()
    html = logged_in.get(f"/messages/{mid}").get_data(as_text=True)
    assert f"/deliveries/{ids[0]}/retry" in html
    assert f"/deliveries/{ids[1]}/retry" not in html  # 21211 invalid number: a resend cannot help
    token = csrf_token_from(html)
    assert logged_in.post(f"/messages/{mid}/deliveries/{ids[0]}/retry").status_code == 400  # no CSRF token
    refused = logged_in.post(f"/messages/{mid}/deliveries/{ids[1]}/retry", data={"csrf_token": token})
    assert refused.status_code == 302
    assert "cannot be retried" in logged_in.get(refused.headers["Location"]).get_data(as_text=True)
    done = logged_in.post(f"/messages/{mid}/deliveries/{ids[0]}/retry", data={"csrf_token": token})
    assert done.status_code == 302
    assert "Sending to +14155550000 again." in logged_in.get(done.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Delivery, ids[0]).status == "queued"


def test_retry_with_redis_down_says_sending_waits_for_redis(
    app: Flask, logged_in: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid, ids = _message(app, ["failed"])
    with app.app_context():
        db.session.get(Delivery, ids[0]).error_code = 20429
        db.session.commit()
    token = csrf_token_from(logged_in.get(f"/messages/{mid}").get_data(as_text=True))
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    monkeypatch.setitem(app.extensions, "smsdash_redis", None)  # clients for the live Redis are not reused
    done = logged_in.post(f"/messages/{mid}/deliveries/{ids[0]}/retry", data={"csrf_token": token})
    page = logged_in.get(done.headers["Location"]).get_data(as_text=True)
    assert "Not sent yet: Redis (the job queue) cannot be reached. The 1 delivery is saved as queued" in page
    assert "again." not in page
    with app.app_context():
        delivery = db.session.get(Delivery, ids[0])
        assert (delivery.status, delivery.enqueued_at) == ("queued", None)
    monkeypatch.undo()  # before `app` empties the live Redis
