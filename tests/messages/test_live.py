"""The message page's live poll, beyond badges: a status filter that stays truthful as deliveries
move, open timelines that pick up events which change no status, and "waiting to retry".

`LivePage` plays the part htmx plays in the browser: it polls the poller's URL with every
`[data-poll]` input the page holds, adopts the poller the answer brings, and reads the table's
inputs again when the answer swaps the table. tests/test_browser.py runs the real thing.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from smsdash.compose.service import Recipient, compose_message
from smsdash.delivery.status import apply_status
from smsdash.delivery.timeline import record_event
from smsdash.extensions import db
from smsdash.models import Delivery
from smsdash.sending import job as send_job
from smsdash.simulator import Simulator
from tests.messages.test_views import _message, _move

TABLE_INPUTS = ("shown", "status", "q", "page", "total")


def _table_inputs(html: str) -> dict[str, str]:
    return {
        name: value
        for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)" data-poll>', html)
        if name in TABLE_INPUTS
    }


def _poller_url(html: str) -> str | None:
    found = re.search(r'<div id="poller" hx-get="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


class LivePage:
    """A message page open in a browser: what it shows and what its next poll sends."""

    def __init__(self, client: FlaskClient, url: str) -> None:
        self.client = client
        self.html = client.get(url).get_data(as_text=True)
        self.poll_url = _poller_url(self.html)
        self.inputs = _table_inputs(self.html)
        self.open: list[int] = []

    def poll(self) -> Any:
        assert self.poll_url, "the page stopped polling"
        # In production each request has its own session. Under pytest-flask every client request
        # runs in the test's app context, so one session, whose identity map would hand back rows
        # as an earlier request loaded them: start each poll from a fresh one, as a server would.
        db.session.remove()
        query = urlencode({**self.inputs, "open": self.open}, doseq=True)
        response = self.client.get(f"{self.poll_url}&{query}")
        if response.status_code == 200:
            body = response.get_data(as_text=True)
            self.poll_url = _poller_url(body)
            if 'class="recipient-table" hx-swap-oob="outerHTML:#rt-' in body:
                self.inputs = _table_inputs(body)
        return response


def _row(html: str, delivery_id: int) -> str:
    """One recipient's <tbody> in a rendered table."""
    found = re.search(rf'<tbody class="delivery[^"]*" id="d-{delivery_id}".*?</tbody>', html, re.S)
    assert found, f"delivery {delivery_id} is not listed"
    return found.group(0)


# ---- a status filter stays truthful --------------------------------------------------------------


def test_a_delivery_that_enters_the_filter_appears_with_counts_that_agree(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["failed", "sending", "sending", "sent"])
    page = LivePage(logged_in, f"/messages/{mid}?status=failed")
    assert f'id="d-{ids[0]}"' in page.html and f'id="d-{ids[2]}"' not in page.html
    assert page.poll().status_code == 204

    _move(app, ids[2], "failed", source="job", error_code=21211)
    body = page.poll().get_data(as_text=True)
    assert 'class="recipient-table" hx-swap-oob="outerHTML:#rt-' in body
    assert 'data-status="failed"' in _row(body, ids[2]) and "phone number is not valid" in _row(body, ids[2])
    assert f'id="d-{ids[1]}"' not in body  # still sending
    assert page.inputs == {"shown": f"{ids[0]},{ids[2]}", "status": "failed", "q": "", "page": "1", "total": "2"}
    assert 'li data-status="failed"><span class="count">2</span>' in body  # the roll-up says the same
    assert page.poll().status_code == 204


def test_a_filter_with_no_match_yet_fills_in(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["sending", "sending"])
    page = LivePage(logged_in, f"/messages/{mid}?status=undelivered&q=415")
    assert "No recipient matches status “undelivered” and “415”" in page.html
    _move(app, ids[1], "undelivered", error_code=30003)
    body = page.poll().get_data(as_text=True)
    assert 'data-status="undelivered"' in _row(body, ids[1]) and f'id="d-{ids[0]}"' not in body
    assert page.inputs["shown"] == str(ids[1]) and page.inputs["q"] == "415"


def test_rows_that_leave_the_filter_go_except_one_whose_timeline_is_open(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["sending", "sending", "sending"])
    page = LivePage(logged_in, f"/messages/{mid}?status=sending")
    page.open = [ids[1]]
    assert page.poll().status_code == 204  # opening a listed row's timeline changes nothing watched

    _move(app, ids[0], "sent", source="job")
    _move(app, ids[1], "sent", source="job")
    body = page.poll().get_data(as_text=True)
    assert f'id="d-{ids[0]}"' not in body  # left the filter: gone
    kept = _row(body, ids[1])  # left it too, but the operator is reading its timeline
    assert "data-kept" in kept and "No longer in this list; kept here while its timeline is open" in kept
    assert 'data-status="sent"' in kept
    assert 'aria-expanded="true"' in kept and "from send job" in kept  # the timeline stays open, filled in
    assert 'data-status="sending"' in _row(body, ids[2])
    assert page.inputs["shown"] == str(ids[2]) and page.inputs["total"] == "1"
    assert 'li data-status="sending"><span class="count">1</span>' in body
    assert page.poll().status_code == 204

    _move(app, ids[1], "delivered")  # the kept row keeps updating, in place
    body = page.poll().get_data(as_text=True)
    assert 'class="recipient-table"' not in body
    assert f'<div id="st-{ids[1]}" class="status-cell" hx-swap-oob="innerHTML">' in body
    assert f'<div id="tl-{ids[1]}" hx-swap-oob="innerHTML">' in body and 'data-status="delivered"' in body

    page.open = []  # closing its timeline removes the row in the browser; nothing brings it back
    _move(app, ids[2], "sent", source="job")
    body = page.poll().get_data(as_text=True)
    assert "No recipient matches status “sending”" in body and f'id="d-{ids[1]}"' not in body


def test_a_change_that_moves_no_row_in_or_out_swaps_badges_not_the_table(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["failed", "queued"])
    page = LivePage(logged_in, f"/messages/{mid}?status=failed")
    _move(app, ids[1], "sending", source="job")
    body = page.poll().get_data(as_text=True)
    assert 'class="recipient-table"' not in body
    assert f'<div id="st-{ids[0]}" class="status-cell" hx-swap-oob="innerHTML">' in body
    assert f'id="st-{ids[1]}"' not in body


def test_the_filtered_table_keeps_its_page_and_pager_links_without_poll_arguments(
    app: Flask, logged_in: FlaskClient
) -> None:
    mid, ids = _message(app, ["failed"] * 51 + ["sending"])
    page = LivePage(logged_in, f"/messages/{mid}?status=failed&page=2")
    assert page.inputs["shown"] == str(ids[50]) and page.inputs["page"] == "2"
    _move(app, ids[51], "failed", source="job", error_code=21211)
    body = page.poll().get_data(as_text=True)
    assert page.inputs == {"shown": f"{ids[50]},{ids[51]}", "status": "failed", "q": "", "page": "2", "total": "52"}
    assert "51–52 of 52" in body
    previous = re.search(r'<a href="([^"]+)" rel="prev"', body).group(1)  # type: ignore[union-attr]
    assert previous == f"/messages/{mid}?status=failed&amp;page=1"


def test_a_table_left_with_fewer_pages_is_replaced_where_it_stands(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["sending"] * 51)
    page = LivePage(logged_in, f"/messages/{mid}?status=sending&page=2")
    on_screen = re.search(r'<div id="(rt-\w+)" class="recipient-table"', page.html).group(1)  # type: ignore[union-attr]
    _move(app, ids[0], "sent", source="job")
    body = page.poll().get_data(as_text=True)
    assert f'class="recipient-table" hx-swap-oob="outerHTML:#{on_screen}"' in body  # the page-2 table it replaces
    assert page.inputs["page"] == "1" and page.inputs["total"] == "50" and f'id="d-{ids[1]}"' in body


# ---- events that change no status --------------------------------------------------------------


def test_an_open_timeline_picks_up_events_that_change_no_status(
    app: Flask, logged_in: FlaskClient, statements: list[str]
) -> None:
    mid, ids = _message(app, ["sent", "sent"])
    _move(app, ids[1], "undelivered", error_code=30003)
    page = LivePage(logged_in, f"/messages/{mid}")
    page.open = [ids[1]]
    statements.clear()
    assert page.poll().status_code == 204
    # The unchanged poll stays one statement on the message's tables: the roll-up counts the
    # watched rows' events in the same query.
    assert len([s for s in statements if "comms_" in s]) == 1, statements

    _move(app, ids[1], "undelivered", error_code=30005)  # a late repeat with another code: no move
    body = page.poll().get_data(as_text=True)
    timeline = body.split(f'<div id="tl-{ids[1]}" hx-swap-oob="innerHTML">')[1]
    assert "30005" in timeline and "30003" in timeline
    assert page.poll().status_code == 204

    with app.app_context():
        record_event(ids[1], "note", source="app", detail="Called them: <b>phone was off</b>")
        db.session.commit()
    body = page.poll().get_data(as_text=True)
    assert "Called them: &lt;b&gt;phone was off&lt;/b&gt;" in body  # escaped, like every detail
    assert page.poll().status_code == 204


def test_events_of_rows_not_on_screen_do_not_wake_the_poll(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["sent"] * 52)
    page = LivePage(logged_in, f"/messages/{mid}")  # rows 1-50
    with app.app_context():
        record_event(ids[51], "note", source="app", detail="on page 2")
        db.session.commit()
    assert page.poll().status_code == 204
    with app.app_context():
        record_event(ids[0], "note", source="app", detail="on page 1")
        db.session.commit()
    assert page.poll().status_code == 200


def test_changing_the_filter_brings_a_poller_for_the_new_rows(app: Flask, logged_in: FlaskClient) -> None:
    """The version counts the shown rows' events, so a new table carries its own poller: the
    first poll after a filter change is not a wasted 'changed' answer."""
    mid, ids = _message(app, ["failed", "sent"])
    with app.app_context():
        record_event(ids[1], "note", source="app", detail="only this row has an event")
        db.session.commit()
    page = LivePage(logged_in, f"/messages/{mid}")
    fragment = logged_in.get(
        f"/messages/{mid}?status=failed", headers={"HX-Request": "true", "HX-Target": "recipients"}
    ).get_data(as_text=True)
    assert '<div id="poller"' in fragment and 'hx-swap-oob="true"></div>' in fragment
    page.poll_url, page.inputs = _poller_url(fragment), _table_inputs(fragment)
    assert page.poll().status_code == 204


# ---- waiting to retry --------------------------------------------------------------------------


def test_a_send_waiting_out_a_backoff_says_so_until_it_moves_on(
    twilio_app: Flask, simulator: Simulator, logged_in: FlaskClient
) -> None:
    twilio_app.config.update(SEND_RETRY_BASE_SECONDS=60.0, SEND_RETRY_MAX_SECONDS=300.0, SEND_MAX_ATTEMPTS=4)
    with twilio_app.app_context():
        mid = compose_message("Hello", [Recipient("+14155550101"), Recipient("+14155550102")], author_id=None).id
        waiting, other = db.session.scalars(
            select(Delivery.id).where(Delivery.message_id == mid).order_by(Delivery.id)
        ).all()
    simulator.set_knobs(error_500_rate=1.0)
    with twilio_app.app_context():
        send_job.send_delivery(other)  # claimed: `sending`, then the 500's retry event
    page = LivePage(logged_in, f"/messages/{mid}")
    cell = _row(page.html, other)
    assert 'data-status="sending"' in cell
    assert re.search(
        r"waiting to retry: attempt 2 of 4, due at <time datetime=\"[^\"]+\">\d\d:\d\d:\d\d\.\d UTC</time>", cell
    ), cell
    assert "Twilio had an internal error." in cell
    assert "waiting to retry" not in _row(page.html, waiting)  # still queued

    with twilio_app.app_context():  # the same, live: the retry event alone wakes the poll
        send_job.send_delivery(waiting)
    body = page.poll().get_data(as_text=True)
    status_cell = body.split(f'<div id="st-{waiting}" class="status-cell" hx-swap-oob="innerHTML">')[1].split("</div>")[
        0
    ]
    assert "waiting to retry: attempt 2 of 4" in status_cell and "Twilio had an internal error." in status_cell

    simulator.set_knobs(error_500_rate=0.0)
    with twilio_app.app_context():  # the scheduled retry runs: sent, and the note goes
        send_job.send_delivery(waiting, expected_attempts=1, try_number=2)
    body = page.poll().get_data(as_text=True)
    status_cell = body.split(f'<div id="st-{waiting}" class="status-cell" hx-swap-oob="innerHTML">')[1].split("</div>")[
        0
    ]
    assert 'data-status="sent"' in status_cell and "waiting to retry" not in status_cell


def test_a_wait_ends_when_the_next_attempt_starts(app: Flask, logged_in: FlaskClient) -> None:
    mid, ids = _message(app, ["sending"])
    with app.app_context():
        record_event(
            ids[0],
            "retry",
            source="job",
            error_code=None,
            detail="Twilio did not answer within 2.0 s; attempt 3 of 5 in 8.0 s",
            payload={
                "retry_at": "2026-11-26T12:00:08.500000+00:00",
                "next_try": 3,
                "max_tries": 5,
                "reason": "Twilio did not answer within 2.0 s",
            },
        )
        db.session.commit()
    page = LivePage(logged_in, f"/messages/{mid}")
    cell = _row(page.html, ids[0])
    assert "waiting to retry: attempt 3 of 5, due at" in cell and "12:00:08.5 UTC" in cell
    assert "Twilio did not answer within 2.0 s" in cell  # no code to explain: the job's own words
    with app.app_context():
        apply_status(ids[0], "sending", source="job", detail="attempt 3 of 5", dedupe=False)
        db.session.commit()
    body = page.poll().get_data(as_text=True)
    assert "waiting to retry" not in body
