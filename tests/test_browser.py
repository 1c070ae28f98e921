"""The dashboard in a real browser: headless Debian chromium through Playwright, against the app
served over HTTP, a real worker process and the Twilio simulator calling the app back over HTTP.

One operator session: log in, compose to three numbers (one delivered, one Twilio refuses at
once with 21211, one the carrier reports undelivered), watch the badges change without a page
reload, open a timeline, download the CSV export, and see a post without a CSRF token refused.
Set SCREENSHOT_DIR to also save the compose page and the message page as PNGs (docs/screenshots).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from smsdash.models import User
from smsdash.redis_conn import shareable_url
from smsdash.simulator import Simulator
from smsdash.simulator.callbacks import HttpTransport
from smsdash.simulator.numbers import TO_INVALID, TO_UNREACHABLE
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DELIVERABLE = "+14155550123"
# Short but visible: the page must show `queued`, then `sent`, then the final status.
LIVE_KNOBS = {"hold_callbacks": False, "callback_sent_delay": 0.6, "callback_final_delay": 1.8, "callback_jitter": 0.0}


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI must run the browser tests")
    pytest.skip(message)


class LiveServer:
    """The app served by werkzeug on 127.0.0.1 at an ephemeral port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.thread.join(5)


def _worker_env(app: Flask) -> dict[str, str]:
    """The worker process sees the same database, Redis, Twilio and public URL as the app."""
    redis_url = shareable_url(app)
    config = app.config
    return {
        **os.environ,
        "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": redis_url,
        "SECRET_KEY": config["SECRET_KEY"],
        "BASE_HOST_URL": config["BASE_HOST_URL"],
        "TWILIO_ACCOUNT_SID": config["TWILIO_ACCOUNT_SID"],
        "TWILIO_AUTH_TOKEN": config["TWILIO_AUTH_TOKEN"],
        "TWILIO_FROM_NUMBER": config["TWILIO_FROM_NUMBER"],
        "TWILIO_API_BASE_URL": config["TWILIO_API_BASE_URL"],
        "APP_ENV": "development",
    }


@pytest.fixture
def live(app: Flask, simulator: Simulator, operator: User) -> Iterator[tuple[LiveServer, Simulator]]:
    _require_chromium()
    with LiveServer(app) as server:
        app.config.update(simulator.client_config(), BASE_HOST_URL=server.url)
        simulator.set_knobs(**LIVE_KNOBS)
        simulator.set_transport(HttpTransport(timeout=5))
        yield server, simulator


@pytest.fixture
def browser_page() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1180, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        # The app's Content-Security-Policy allows only its own script files: anything it blocks
        # (an inline handler, htmx needing eval) would be a silently broken feature.
        blocked: list[str] = []
        page.on(
            "console",
            lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None,
        )
        yield page
        context.close()
        browser.close()
        assert blocked == [], blocked


def _start_worker(app: Flask, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
        cwd=PROJECT_ROOT,
        env={**_worker_env(app), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.terminate()
    try:
        _, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err.decode(errors="replace")[-3000:]


def _badge(page: Any, number: str) -> Any:
    return page.locator("tbody.delivery", has_text=number).locator(".status-cell .badge")


def _log_in(page: Any, server: LiveServer) -> None:
    from playwright.sync_api import expect

    page.goto(server.url + "/login")
    page.get_by_label("Email").fill("op@example.com")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Messages")).to_be_visible()


def test_operator_watches_a_send_live(
    app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    server, simulator = live
    page = browser_page
    shots = os.environ.get("SCREENSHOT_DIR")

    _log_in(page, server)
    page.get_by_role("link", name="Compose").first.click()
    page.get_by_label("Recipients").fill(f"(415) 555-0123\n{TO_INVALID}, {TO_UNREACHABLE}")
    page.get_by_label("Message", exact=True).fill("Your order has shipped. Reply STOP to opt out.")
    expect(page.locator("#segment-counter")).to_contain_text("1 segment")
    expect(page.locator("#recipient-summary")).to_contain_text("3 recipients")
    if shots:
        page.get_by_label("Message", exact=True).fill(
            "Your order has shipped – it’s on its way! Reply STOP to opt out."
        )
        expect(page.locator("#segment-counter")).to_contain_text("UCS-2")
        page.screenshot(path=os.path.join(shots, "compose.png"), full_page=True)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Message #")).to_be_visible()

    # Everything is queued (no worker yet); mark the window, then let the worker send.
    for number in (DELIVERABLE, TO_INVALID, TO_UNREACHABLE):
        expect(_badge(page, number)).to_have_text("queued")
    page.evaluate("window.__noReload = 'still here'")
    worker = _start_worker(app)
    try:
        expect(_badge(page, TO_INVALID)).to_have_text("failed")
        expect(_badge(page, DELIVERABLE)).to_have_attribute("data-status", "delivered")
        expect(_badge(page, TO_UNREACHABLE)).to_have_attribute("data-status", "undelivered")
    finally:
        errors = _stop(worker)
    assert page.evaluate("window.__noReload") == "still here", "the page reloaded instead of updating live"
    expect(page.locator(".rollup .progress-text")).to_contain_text("3 of 3 final")
    expect(page.locator("#poller")).not_to_have_attribute("hx-trigger", "every 2s")  # polling stopped
    assert "Traceback" not in errors, errors

    failed_row = page.locator("tbody.delivery", has_text=TO_INVALID)
    expect(failed_row).to_contain_text("The recipient's phone number is not valid.")
    page.locator("tbody.delivery", has_text=TO_UNREACHABLE).get_by_role("button", name="Timeline").click()
    timeline = page.locator("tbody.delivery", has_text=TO_UNREACHABLE).locator(".timeline")
    for step in ("sending", "sent", "undelivered"):
        expect(timeline.locator(f'.step-head .badge[data-status="{step}"]').first).to_be_visible()
    expect(timeline).to_contain_text("from send job")
    expect(timeline).to_contain_text("from Twilio callback")
    expect(timeline).to_contain_text("undelivered")
    expect(timeline).to_contain_text("after sent")
    expect(timeline).to_contain_text("30003")
    if shots:
        page.screenshot(path=os.path.join(shots, "message.png"), full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    path = tmp_path / "export.csv"
    download_info.value.save_as(path)
    with open(path, newline="") as fh:
        rows = {r["to_number"]: r for r in csv.DictReader(fh)}
    assert {n: (r["status"], r["error_code"]) for n, r in rows.items()} == {
        DELIVERABLE: ("delivered", ""),
        TO_INVALID: ("failed", "21211"),
        TO_UNREACHABLE: ("undelivered", "30003"),
    }
    assert rows[DELIVERABLE]["delivered_at"] and rows[TO_INVALID]["error_meaning"]

    refused = page.request.post(server.url + "/messages/new", form={"recipients": DELIVERABLE, "body": "no token"})
    assert refused.status == 400
    assert len(simulator.messages) == 2  # the refused post sent nothing


def test_compose_picker_and_bad_numbers_in_the_browser(
    app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any
) -> None:
    """The htmx parts of compose: search a group, tick it, see the count; bad numbers named, input kept."""
    from playwright.sync_api import expect

    from smsdash.delivery.optouts import record_opt_out
    from smsdash.extensions import db
    from smsdash.models import Contact, Group

    with app.app_context():
        ada, bob = Contact(name="Ada", phone="+14155550101"), Contact(name="Bob", phone="+14155550102")
        db.session.add(Group(name="Night shift", contacts=[ada, bob]))
        record_opt_out(bob.phone, "", "test")
        db.session.commit()
    server, simulator = live
    page = browser_page
    _log_in(page, server)
    page.goto(server.url + "/messages/new")

    page.get_by_label("Add contacts or groups").fill("night")
    page.get_by_label("Group: Night shift (2)").check()
    expect(page.locator("#recipient-summary")).to_contain_text("1 recipient will be sent")
    expect(page.locator("#recipient-summary")).to_contain_text("1 opted out")
    page.get_by_label("Recipients").fill("415 555 0101, 12ab")
    expect(page.locator("#recipient-summary")).to_contain_text("1 duplicate removed")
    expect(page.locator("#recipient-summary")).to_contain_text("12ab")

    page.get_by_label("Message", exact=True).fill("Shift starts at 9 {sharp}")
    expect(page.locator("#segment-counter")).to_contain_text("GSM-7")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#recipients-error")).to_contain_text("12ab: not a phone number")
    expect(page.get_by_label("Recipients")).to_have_value("415 555 0101, 12ab")
    expect(page.get_by_label("Message", exact=True)).to_have_value("Shift starts at 9 {sharp}")
    expect(page.get_by_label("Group: Night shift (2)")).to_be_checked()
    assert simulator.messages == []


def test_a_status_filter_stays_truthful_while_deliveries_move(
    app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any
) -> None:
    """Filtered on a status, the list follows the deliveries without a reload: a delivery that
    enters the filter appears, one that leaves it goes, except one whose timeline is open, which
    stays marked until its timeline is closed. Moves are applied straight to the database, as
    the webhook and the send job would."""
    from playwright.sync_api import expect

    from smsdash.delivery.status import apply_status
    from smsdash.extensions import db
    from smsdash.models import Delivery, Message

    numbers = ["+14155550141", "+14155550142", "+14155550143", "+14155550144"]
    with app.app_context():
        message = Message(body="Filter me", recipient_count=len(numbers))
        db.session.add(message)
        db.session.flush()
        rows = [
            Delivery(message_id=message.id, to_number=n, status=s)
            for n, s in zip(numbers, ("failed", "sending", "sending", "sending"))
        ]
        db.session.add_all(rows)
        db.session.commit()
        mid, ids = message.id, [d.id for d in rows]

    def move(index: int, status: str, **kwargs: Any) -> None:
        with app.app_context():
            apply_status(ids[index], status, source="job", **kwargs)
            db.session.commit()

    server, _ = live
    page = browser_page
    _log_in(page, server)
    page.goto(f"{server.url}/messages/{mid}")
    page.get_by_label("Status", exact=True).select_option("failed")
    listed = page.locator("#recipients tbody.delivery")
    expect(listed).to_have_count(1)
    page.evaluate("window.__noReload = 'still here'")

    move(1, "failed", error_code=21211)  # enters the filter
    expect(listed).to_have_count(2)
    expect(_badge(page, numbers[1])).to_have_attribute("data-status", "failed")
    expect(page.locator('.rollup li[data-status="failed"] .count')).to_have_text("2")

    page.get_by_label("Status", exact=True).select_option("sending")
    expect(listed).to_have_count(2)
    kept_row = page.locator("tbody.delivery", has_text=numbers[2])
    kept_row.get_by_role("button", name="Timeline").click()
    expect(kept_row.locator(".timeline-box")).to_contain_text("No events yet.")
    move(2, "sent", sid="SM" + "2" * 32)  # both leave the filter; the operator is reading one
    move(3, "sent", sid="SM" + "3" * 32)
    expect(page.locator("tbody.delivery", has_text=numbers[3])).to_have_count(0)
    expect(kept_row).to_contain_text("No longer in this list; kept here while its timeline is open")
    expect(kept_row.locator(".timeline")).to_contain_text("from send job")
    expect(page.locator("#recipients")).to_contain_text("No recipient matches status “sending”")
    kept_row.get_by_role("button", name="Timeline").click()  # closing it lets the row go
    expect(listed).to_have_count(0)
    assert page.evaluate("window.__noReload") == "still here", "the page reloaded instead of updating live"


def test_a_send_waiting_to_retry_says_so_until_it_goes_out(
    app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any
) -> None:
    """Twilio answers 500: a real worker records the retry and waits; the page says so under the
    `sending` badge without a reload, and the note goes once the retry is sent and delivered."""
    from playwright.sync_api import expect

    from smsdash.compose.service import Recipient, compose_message

    server, simulator = live
    simulator.set_knobs(error_500_rate=1.0)
    with app.app_context():
        mid = compose_message("Retry me", [Recipient(DELIVERABLE)], author_id=None).id
    page = browser_page
    _log_in(page, server)
    page.goto(f"{server.url}/messages/{mid}")
    page.evaluate("window.__noReload = 'still here'")
    cell = page.locator("tbody.delivery", has_text=DELIVERABLE).locator(".status-cell")
    # A backoff of 5 to 10 s: long enough for a 2 s poll to see the wait, short enough to wait out.
    worker = _start_worker(app, SEND_RETRY_BASE_SECONDS="10", SEND_RETRY_MAX_SECONDS="10", SEND_MAX_ATTEMPTS="3")
    try:
        expect(cell.locator(".retry-wait")).to_contain_text("waiting to retry: attempt 2 of 3, due at")
        expect(cell.locator(".retry-wait")).to_contain_text("Twilio had an internal error.")
        expect(cell.locator(".badge")).to_have_attribute("data-status", "sending")
        simulator.set_knobs(error_500_rate=0.0)
        expect(cell.locator(".badge")).to_have_attribute("data-status", "delivered", timeout=30_000)
        expect(cell.locator(".retry-wait")).to_have_count(0)
    finally:
        errors = _stop(worker)
    assert "Traceback" not in errors, errors
    assert page.evaluate("window.__noReload") == "still here", "the page reloaded instead of updating live"


def test_delete_asks_first_and_a_no_keeps_the_contact(
    app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any
) -> None:
    """The confirmation runs from dashboard.js under the script policy, with a name that would
    break out of an inline handler."""
    from playwright.sync_api import expect

    from smsdash.extensions import db
    from smsdash.models import Contact

    with app.app_context():
        contact = Contact(name="x');alert(1);//", phone="+14155550111")
        db.session.add(contact)
        db.session.commit()
        contact_id = contact.id
    server, _ = live
    page = browser_page
    _log_in(page, server)
    questions: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    page.goto(f"{server.url}/contacts/{contact_id}/edit")
    page.get_by_role("button", name="Delete this contact").click()
    expect(page.get_by_role("button", name="Delete this contact")).to_be_visible()
    assert questions == ["Delete x');alert(1);//?"]
    with app.app_context():
        assert db.session.get(Contact, contact_id) is not None

    page.once("dialog", lambda dialog: answer(dialog, accept=True))
    page.get_by_role("button", name="Delete this contact").click()
    expect(page.get_by_role("heading", name="Contacts")).to_be_visible()
    assert len(questions) == 2
    with app.app_context():
        db.session.expire_all()
        assert db.session.get(Contact, contact_id) is None
