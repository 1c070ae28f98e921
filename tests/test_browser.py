"""The dashboard in a real browser: headless Debian chromium through Playwright, against the app
served over HTTP, a real worker process and the Twilio simulator calling the app back over HTTP.

One operator session: log in, compose to three numbers (one delivered, one Twilio refuses at
once with 21211, one the carrier reports undelivered), watch the badges change without a page
reload, open a timeline, download the CSV export, and see a post without a CSRF token refused.
Every page an operator sees, and the pages again after their live htmx updates, is checked with
axe-core (`_assert_accessible`): a serious or critical violation fails the test.
Set SCREENSHOT_DIR to also save the compose page and the message page as PNGs (docs/screenshots).
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from smsdash.models import User
from smsdash.redis_conn import shareable_url
from smsdash.simulator import AUTO_REPLY_BODY, TO_AUTO_REPLY, Simulator
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


# axe-core's impacts are minor, moderate, serious and critical; these two fail a test.
AXE_FAILING_IMPACTS = ("serious", "critical")


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


def _assert_accessible(page: Any, what: str) -> None:
    """Run axe-core (the copy axe-playwright-python bundles) on the page as it stands now, and fail
    on any serious or critical violation, naming the rule, its impact and each offending element.

    axe-playwright-python puts axe into the page with `page.evaluate`, which goes through the
    DevTools protocol and is not subject to the page's `script-src 'self'`; a `<script>` tag
    would be refused (and fail the CSP check of `browser_page`)."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    serious = [v for v in violations if v["impact"] in AXE_FAILING_IMPACTS]
    lines = []
    for v in serious:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
        for node in v["nodes"]:
            checks = node.get("any", []) + node.get("all", []) + node.get("none", [])
            why = "; ".join(c["message"] for c in checks if c.get("message"))
            lines.append(f"    {' >> '.join(map(str, node['target']))}: {why}")
    assert not serious, f"axe-core on {what} ({page.url}):\n" + "\n".join(lines)


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
    _assert_accessible(page, "the compose page")
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
    _assert_accessible(page, "a message just sent, all queued")
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
    _assert_accessible(page, "a message after its live updates, a timeline open")
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

    page.get_by_role("link", name="All messages").click()
    expect(page.locator(".message-item .progress-text")).to_contain_text("3 of 3 final")
    _assert_accessible(page, "the messages list, the message final")


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
    _assert_accessible(page, "the compose page, a group picked and a bad number typed")

    page.get_by_label("Message", exact=True).fill("Shift starts at 9 {sharp}")
    expect(page.locator("#segment-counter")).to_contain_text("GSM-7")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#recipients-error")).to_contain_text("12ab: not a phone number")
    expect(page.get_by_label("Recipients")).to_have_value("415 555 0101, 12ab")
    expect(page.get_by_label("Message", exact=True)).to_have_value("Shift starts at 9 {sharp}")
    expect(page.get_by_label("Group: Night shift (2)")).to_be_checked()
    _assert_accessible(page, "the compose page refusing a bad number")
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
            Delivery(message_id=message.id, to_number=n, status=s, body=message.body)
            for n, s in zip(numbers, ("failed", "sending", "sending", "sending"), strict=True)
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
    _assert_accessible(page, "a status filter after its live updates, a row kept")
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
        _assert_accessible(page, "a message waiting to retry")
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
    _assert_accessible(page, "a contact's form")
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


def test_every_operator_page_passes_axe(app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any) -> None:
    """axe-core on each page an operator sees, empty and filled: log in (with a wrong password),
    messages, compose (picker, summary and counter after their htmx updates), a message with
    deliveries in every kind of state and a timeline open, contacts, a contact's form (with its
    errors), groups, a group, the CSV import (with its report) and setup (its checklist loaded)."""
    from playwright.sync_api import expect

    from smsdash.compose.service import Recipient, compose_message
    from smsdash.delivery.optouts import record_opt_out
    from smsdash.delivery.status import apply_status
    from smsdash.extensions import db
    from smsdash.models import Contact, Delivery, Group

    server, _ = live
    page = browser_page
    check = _assert_accessible

    page.goto(server.url + "/login")
    check(page, "the login page")
    page.get_by_label("Email").fill("op@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".field-error, .flash").first).to_be_visible()
    check(page, "the login page refusing a wrong password")
    _log_in(page, server)
    expect(page.locator(".empty")).to_contain_text("No messages yet")
    check(page, "the messages list, empty")
    page.goto(server.url + "/contacts")
    expect(page.get_by_role("heading", name="Contacts")).to_be_visible()
    check(page, "the contacts list, empty")
    page.goto(server.url + "/groups")
    check(page, "the groups page, empty")

    with app.app_context():
        ada, bob = Contact(name="Ada", phone="+14155550101"), Contact(name="Bob", phone="+14155550102")
        night = Group(name="Night shift", contacts=[ada, bob])
        db.session.add_all([night, Contact(name="Cy", phone="+14155550103")])
        record_opt_out(bob.phone, "", "test")
        db.session.commit()
        group_id, ada_id = night.id, ada.id
        numbers = ["+14155550131", "+14155550132", "+14155550133", "+14155550134"]
        message = compose_message(
            "Shift starts at 9. Reply STOP to opt out.",
            [Recipient(ada.phone, ada.id), Recipient(bob.phone, bob.id)] + [Recipient(n) for n in numbers],
            author_id=None,
        )
        mid = message.id
        ids = dict(db.session.execute(select(Delivery.to_number, Delivery.id).where(Delivery.message_id == mid)).all())
        apply_status(ids[ada.phone], "sending", source="job")
        apply_status(ids[ada.phone], "sent", source="job", sid="SM" + "1" * 32)
        apply_status(ids[ada.phone], "delivered", source="twilio")
        apply_status(ids[numbers[0]], "failed", source="job", error_code=20429)  # retryable: a Retry button
        apply_status(ids[numbers[1]], "sending", source="job")
        apply_status(ids[numbers[1]], "sent", source="job", sid="SM" + "2" * 32)
        apply_status(ids[numbers[1]], "undelivered", source="twilio", error_code=30003)
        apply_status(ids[numbers[2]], "sending", source="job")  # numbers[3] stays queued
        db.session.commit()

    page.goto(server.url + "/messages")
    expect(page.locator(".message-item")).to_have_count(1)
    check(page, "the messages list")

    page.goto(f"{server.url}/messages/{mid}")
    expect(_badge(page, numbers[1])).to_have_attribute("data-status", "undelivered")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    check(page, "a message with deliveries")
    row = page.locator("tbody.delivery", has_text=numbers[1])
    row.get_by_role("button", name="Timeline").click()
    expect(row.locator(".step-error")).to_contain_text("30003")
    check(page, "a message with a timeline open")
    page.get_by_label("Status", exact=True).select_option("failed")
    expect(page.locator("#recipients tbody.delivery")).to_have_count(1)
    check(page, "a message's recipients filtered by status")

    page.goto(server.url + "/messages/new")
    page.get_by_label("Add contacts or groups").fill("night")
    page.get_by_label("Group: Night shift (2)").check()
    page.get_by_label("Recipients").fill("415 555 0101, 12ab")
    expect(page.locator("#recipient-summary")).to_contain_text("1 opted out")
    expect(page.locator("#recipient-summary")).to_contain_text("12ab")
    page.get_by_label("Message", exact=True).fill("Your order has shipped – it’s on its way!")
    expect(page.locator("#segment-counter")).to_contain_text("UCS-2")
    check(page, "the compose page after its live updates")
    page.get_by_label("Add contacts or groups").fill("zzz")
    expect(page.locator("#picker")).to_contain_text("No contact or group matches")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#recipients-error")).to_contain_text("12ab: not a phone number")
    check(page, "the compose page refusing a bad number")

    page.goto(server.url + "/contacts")
    expect(page.locator("#contact-rows tbody tr")).to_have_count(3)
    check(page, "the contacts list")
    page.get_by_label("Search by name or number").fill("nobody")
    expect(page.locator("#contact-rows")).to_contain_text("No contact matches")
    check(page, "the contacts list searched without a match")

    page.goto(server.url + "/contacts/new")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".field-error").first).to_be_visible()
    check(page, "the new-contact form with its errors")
    page.goto(f"{server.url}/contacts/{ada_id}/edit")
    expect(page.get_by_label("Night shift")).to_be_checked()
    check(page, "a contact's form")

    page.goto(server.url + "/groups")
    expect(page.get_by_role("link", name="Night shift")).to_be_visible()
    check(page, "the groups page")
    page.goto(f"{server.url}/groups/{group_id}")
    expect(page.get_by_role("heading", name="2 members")).to_be_visible()
    check(page, "a group's page")

    page.goto(server.url + "/contacts/import")
    check(page, "the import page")
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "c.csv", "mimeType": "text/csv", "buffer": b"name,phone\nDee,4155550104\nBad,12ab\n"}]
    )
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-report")).to_contain_text("1 added")
    check(page, "the import page with its report")

    page.goto(server.url + "/setup")
    expect(page.locator("#checks .check").first).to_be_visible()
    check(page, "the setup page with its checklist")
    page.evaluate("document.getElementById('checks').dataset.stale = 'yes'")
    page.get_by_role("button", name="Check again").click()
    expect(page.locator("#checks[data-stale]")).to_have_count(0)  # the checklist was replaced
    expect(page.get_by_role("button", name="Check again")).to_be_enabled()
    check(page, "the setup page after Check again")


def test_personalised_preview_shows_each_text_and_the_message_page_too(
    app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any
) -> None:
    """Two contacts and a typed number, one body with {{first_name|there}}: the preview shows
    three different texts as the operator types, and follows the typing without a reload; the
    message page then shows what each got."""
    from playwright.sync_api import expect

    from smsdash.extensions import db
    from smsdash.models import Contact, ContactField

    with app.app_context():
        db.session.add_all(
            [
                Contact(name="Ada Lovelace", phone="+14155550101", fields=[ContactField(name="site", value="Leeds")]),
                Contact(name="Grace Hopper", phone="+14155550102"),
            ]
        )
        db.session.commit()
    server, _ = live
    page = browser_page
    _log_in(page, server)
    page.goto(server.url + "/messages/new")
    page.get_by_label("Recipients").fill("+14155550109")
    for name in ("Ada", "Grace"):
        page.get_by_label("Add contacts or groups").fill(name)
        page.locator("#picker .matches").get_by_label(name, exact=False).check()
    expect(page.locator("#recipient-summary")).to_contain_text("3 recipients")
    page.evaluate("window.notReloaded = true")  # gone if anything below reloads the page
    message = page.get_by_label("Message", exact=True)
    message.press_sequentially("Hi {{first_name|there}},")
    preview = page.locator("#preview .preview-body")
    expect(preview).to_have_text(["Hi there,", "Hi Ada,", "Hi Grace,"])
    message.press_sequentially(" your shift at {{ site | the depot }} is at 9.")
    expect(preview).to_have_text(
        [
            "Hi there, your shift at the depot is at 9.",
            "Hi Ada, your shift at Leeds is at 9.",
            "Hi Grace, your shift at the depot is at 9.",
        ]
    )
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#segment-counter")).to_contain_text("Longest text, for +14155550109")  # ties go to the first
    expect(page.locator("#segment-counter")).to_contain_text("3 segments in all")
    shots = os.environ.get("SCREENSHOT_DIR")
    if shots:
        page.locator("form.compose").screenshot(path=os.path.join(shots, "compose-preview.png"))
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Message #")).to_be_visible()
    bodies = page.locator(".recipients .delivery-body")
    expect(bodies).to_have_count(3)
    expect(page.locator("tbody.delivery", has_text="+14155550109")).to_contain_text("Hi there, your shift at the depot")
    expect(page.locator("tbody.delivery", has_text="Ada Lovelace")).to_contain_text("Hi Ada, your shift at Leeds")
    expect(page.locator("tbody.delivery", has_text="Grace Hopper")).to_contain_text("Hi Grace, your shift at the depot")


def test_every_personalisation_page_passes_axe(
    app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any
) -> None:
    """axe-core on the pages personalisation added, each empty and filled: contact fields, the
    templates list (in use and archived), a new template refused then previewed, a template's
    edit form, compose started from a template with its live preview and a missing field named,
    and the spreadsheet page (empty, a file refused, bad rows listed, then the rows ready to send)."""
    from playwright.sync_api import expect

    from smsdash.extensions import db
    from smsdash.models import Contact, ContactField

    with app.app_context():
        db.session.add_all(
            [
                Contact(name="Ada Lovelace", phone="+14155550101", fields=[ContactField(name="site", value="Leeds")]),
                Contact(name="Grace Hopper", phone="+14155550102"),
            ]
        )
        db.session.commit()
    server, _ = live
    page = browser_page
    check = _assert_accessible
    _log_in(page, server)

    page.goto(server.url + "/contacts/fields")
    expect(page.locator("main")).to_contain_text("site")
    check(page, "the contact fields page")

    page.goto(server.url + "/templates")
    expect(page.locator(".empty")).to_contain_text("No templates yet")
    check(page, "the templates list, empty")
    page.goto(server.url + "/templates/new")
    check(page, "the new-template form")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".field-error").first).to_be_visible()
    check(page, "the new-template form with its errors")
    page.get_by_label("Name").fill("Shift reminder")
    page.get_by_label("Message", exact=True).fill("Hi {{first_name|there}}, your shift at {{site}} is at 9.")
    expect(page.locator("#preview")).to_contain_text("Hi Ada, your shift at Leeds is at 9.")
    check(page, "the new-template form with its live preview")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("link", name="Shift reminder", exact=True)).to_be_visible()
    check(page, "the templates list")
    page.get_by_role("link", name="Shift reminder", exact=True).click()
    expect(page.get_by_label("Name")).to_have_value("Shift reminder")
    check(page, "a template's edit form")
    page.goto(server.url + "/templates")
    page.get_by_role("button", name="Duplicate").first.click()
    page.goto(server.url + "/templates")
    page.get_by_role("button", name="Archive").last.click()  # the copy
    page.goto(server.url + "/templates?archived=1")
    expect(page.get_by_role("button", name="Restore").first).to_be_visible()
    check(page, "the archived templates")

    page.goto(server.url + "/messages/new")
    expect(page.get_by_label("Use a template")).to_be_visible()
    check(page, "the compose page with its template picker")
    page.get_by_label("Use a template").select_option(label="Shift reminder")
    page.get_by_role("button", name="Use").click()
    expect(page.get_by_label("Message", exact=True)).to_have_value(
        "Hi {{first_name|there}}, your shift at {{site}} is at 9."
    )
    for name in ("Ada", "Grace"):
        page.get_by_label("Add contacts or groups").fill(name)
        page.locator("#picker .matches").get_by_label(name, exact=False).check()
    expect(page.locator("#preview")).to_contain_text("Hi Ada, your shift at Leeds is at 9.")
    expect(page.locator("#preview .missing-fields")).to_contain_text("Grace Hopper")
    check(page, "the compose page from a template, its preview naming a missing field")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#body-error")).to_contain_text("no site")
    check(page, "the compose page refusing a recipient with no site")

    sheet_page = server.url + "/messages/new/spreadsheet"
    page.goto(sheet_page)
    check(page, "the spreadsheet page, empty")
    body = page.get_by_label("Message", exact=True)
    body.fill("Hi {{name}}, your shift at {{site}} is at 9.")
    upload = page.get_by_label("Spreadsheet (.csv or .xlsx)")
    upload.set_input_files(files=[{"name": "s.csv", "mimeType": "text/csv", "buffer": b"name,site\nAda,Leeds\n"}])
    page.get_by_role("button", name="Check the spreadsheet").click()
    expect(page.locator("#file-error")).to_contain_text("No phone column")
    check(page, "the spreadsheet page refusing a file")
    bad = b"name,phone,site\nAda,+14155550101,Leeds\nBob,12ab,York\nCy,+14155550103,\n"
    upload.set_input_files(files=[{"name": "s.csv", "mimeType": "text/csv", "buffer": bad}])
    page.get_by_role("button", name="Check the spreadsheet").click()
    expect(page.locator(".row-errors")).to_contain_text("Line 3: 12ab: not a phone number")
    check(page, "the spreadsheet page listing bad rows")
    good = b"name,phone,site\nAda,+14155550101,Leeds\nBob,+14155550102,York\nAda,+14155550101,Leeds\n"
    upload.set_input_files(files=[{"name": "s.csv", "mimeType": "text/csv", "buffer": good}])
    page.get_by_role("button", name="Check the spreadsheet").click()
    expect(page.get_by_role("button", name="Send to 2 recipients")).to_be_visible()
    expect(page.locator(".row-duplicates")).to_contain_text("Line 4")
    expect(page.locator("#preview")).to_contain_text("Hi Bob, your shift at York is at 9.")
    check(page, "the spreadsheet page, rows read and ready to send")


def test_a_reply_arrives_live_and_the_operator_answers_from_the_thread(
    app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any
) -> None:
    """Send to the auto-reply number, watch its reply appear in the inbox and the nav badge change
    without a reload, open the thread (read: the badge goes), answer, and watch the answer's
    badge reach `delivered`."""
    from playwright.sync_api import expect

    from smsdash.twilio.client import build_client

    server, simulator = live
    page = browser_page
    shots = os.environ.get("SCREENSHOT_DIR")
    simulator.set_knobs(auto_reply_delay=0.5)
    sdk = build_client(simulator.client_config())
    sdk.messaging.v1.services(simulator.messaging_service_sid).update(
        inbound_request_url=server.url + "/webhooks/twilio/inbound"
    )

    _log_in(page, server)
    page.get_by_role("link", name="Compose").first.click()
    page.get_by_label("Recipients").fill(TO_AUTO_REPLY)
    page.get_by_label("Message", exact=True).fill("Your shift starts at 9. Can you make it?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Message #")).to_be_visible()
    page.get_by_role("link", name="Inbox").click()
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(page.locator("#nav-inbox .unread-count")).to_have_count(0)
    _assert_accessible(page, "the empty inbox")
    page.evaluate("window.__noReload = 'still here'")
    worker = _start_worker(app)
    try:
        row = page.locator(f'tr[data-number="{TO_AUTO_REPLY}"]')
        # The worker starts, sends, the two callbacks and the reply follow: more than expect's 5 s.
        expect(row).to_contain_text(AUTO_REPLY_BODY, timeout=15_000)
        expect(page.locator("#nav-inbox .unread-count")).to_have_attribute("data-unread", "1")
        assert page.evaluate("window.__noReload") == "still here", "the inbox reloaded instead of updating live"
        _assert_accessible(page, "the inbox with a new reply")
        if shots:
            page.screenshot(path=os.path.join(shots, "inbox.png"), full_page=True)

        row.get_by_role("link").click()
        expect(page.locator(".thread .theirs")).to_contain_text(AUTO_REPLY_BODY)
        expect(page.locator('.thread .ours .badge[data-status="delivered"]')).to_have_count(1)
        expect(page.locator("#nav-inbox .unread-count")).to_have_count(0)
        _assert_accessible(page, "a conversation")
        page.get_by_label("Your answer").fill("Great, see you at 9.")
        page.get_by_role("button", name="Send reply").click()
        answer = page.locator(".thread .ours", has_text="Great, see you at 9.")
        expect(answer).to_be_visible()
        page.evaluate("window.__noReload = 'still here'")
        expect(answer.locator(".badge")).to_have_attribute("data-status", "delivered", timeout=15_000)
        assert page.evaluate("window.__noReload") == "still here", "the thread reloaded instead of updating live"
        _assert_accessible(page, "a conversation after its live updates")
        if shots:
            page.screenshot(path=os.path.join(shots, "conversation.png"), full_page=True)
    finally:
        errors = _stop(worker)
    assert "Traceback" not in errors, errors


def test_schedule_see_it_count_down_cancel_it_then_watch_another_go_out(
    app: Flask, live: tuple[LiveServer, Simulator], browser_page: Any
) -> None:
    """Schedule three minutes ahead, find it on the scheduled page counting down, cancel it (no text
    goes out); schedule another, let it fall due, and watch its badges go live with a worker up."""
    from playwright.sync_api import expect

    from smsdash.extensions import db
    from smsdash.models import Delivery, utcnow

    server, simulator = live
    page = browser_page

    def schedule(body: str) -> None:
        page.get_by_role("link", name="Compose").first.click()
        page.get_by_label("Recipients").fill(DELIVERABLE)
        page.get_by_label("Message", exact=True).fill(body)
        page.get_by_label("Send later").check()
        zone_name = page.get_by_label("Time zone").input_value()
        assert zone_name == page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")  # the browser's
        # The field takes whole minutes: three ahead is two to three minutes away once typed.
        local = datetime.now(ZoneInfo(zone_name)) + timedelta(minutes=3)
        page.get_by_label("Date and time").fill(f"{local:%Y-%m-%dT%H:%M}")
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("heading", name="Message #")).to_be_visible()
        expect(_badge(page, DELIVERABLE)).to_have_attribute("data-status", "scheduled")

    _log_in(page, server)
    schedule("Site closed tomorrow")
    _assert_accessible(page, "the compose page's send-later fields")
    page.get_by_role("link", name="Scheduled").first.click()
    countdown = page.locator("time[data-countdown]")
    expect(countdown).to_have_text(re.compile(r"^in [12] min \d+ s$"))  # never under a minute, however slow the run
    expect(countdown).not_to_have_text(countdown.text_content() or "")  # it ticks without a reload
    _assert_accessible(page, "the scheduled page")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator(".flash")).to_contain_text("canceled: 1 deliveries will not be sent")
    expect(page.locator(".empty")).to_contain_text("Nothing is scheduled")
    page.get_by_role("link", name="Messages").first.click()
    page.locator(".message-link").first.click()
    expect(_badge(page, DELIVERABLE)).to_have_attribute("data-status", "canceled")
    assert simulator.messages == []

    schedule("Shift moved to 7")
    page.evaluate("window.__noReload = 'still here'")
    with app.app_context():  # minutes pass: the time comes while the page is open
        db.session.execute(
            Delivery.__table__.update().where(Delivery.status == "scheduled").values(send_after=utcnow())
        )
        db.session.commit()
    worker = _start_worker(app)
    try:
        expect(_badge(page, DELIVERABLE)).to_have_attribute("data-status", "delivered", timeout=45_000)
    finally:
        errors = _stop(worker)
    assert page.evaluate("window.__noReload") == "still here", "the page reloaded instead of updating live"
    assert "Traceback" not in errors, errors
    assert [m.to for m in simulator.messages] == [DELIVERABLE]


def test_a_team_an_approval_and_the_audit_log(app: Flask, live: tuple[LiveServer, Simulator]) -> None:
    """An admin adds a sender and a viewer on the team page; each sets a password from their
    one-time link; the viewer sees no Send; the sender composes above APPROVAL_THRESHOLD and sees
    it awaiting approval; the admin approves it on the message page; the sender's page goes live
    without a reload; the audit page shows all of it. Three browser contexts: three sessions."""
    from playwright.sync_api import expect, sync_playwright

    server, _ = live
    app.config["APPROVAL_THRESHOLD"] = 2
    numbers = [DELIVERABLE, "+14155550124", "+14155550125"]

    def set_password(page: Any, link: str, email: str, password: str) -> None:
        page.goto(link)
        page.get_by_label("New password", exact=True).fill(password)
        page.get_by_label("New password again").fill(password)
        page.get_by_role("button", name="Set password").click()
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Messages")).to_be_visible()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        admin, sender, viewer = (browser.new_context().new_page() for _ in range(3))
        for page in (admin, sender, viewer):
            page.set_default_timeout(15_000)
        _log_in(admin, server)
        admin.get_by_role("link", name="Team").click()
        links = {}
        for email, role in (("sam@example.com", "sender"), ("vic@example.com", "viewer")):
            admin.get_by_label("Email").fill(email)
            admin.locator("#add-role").select_option(role)
            admin.get_by_role("button", name="Add operator").click()
            expect(admin.get_by_role("heading", name=f"Set-password link for {email}")).to_be_visible()
            links[email] = admin.get_by_role("textbox", name="Link").input_value()
        _assert_accessible(admin, "the team page, a link shown")
        set_password(sender, links["sam@example.com"], "sam@example.com", "sam's long password")
        set_password(viewer, links["vic@example.com"], "vic@example.com", "vic's long password")

        expect(viewer.get_by_role("link", name="Compose")).to_have_count(0)
        viewer.goto(server.url + "/messages/new")
        expect(viewer.get_by_role("heading", name="Not allowed")).to_be_visible()
        expect(viewer.get_by_role("button", name="Send")).to_have_count(0)
        token = viewer.locator('meta[name="csrf-token"]').get_attribute("content")
        forged = viewer.request.post(
            server.url + "/contacts/new", form={"csrf_token": token, "name": "Mallory", "phone": "+14155550199"}
        )
        assert forged.status == 403  # a valid session and token, the wrong role

        sender.get_by_role("link", name="Compose").first.click()
        sender.get_by_label("Recipients").fill("\n".join(numbers))
        sender.get_by_label("Message", exact=True).fill("The depot opens at 7 tomorrow.")
        sender.get_by_role("button", name="Send").click()
        expect(sender.get_by_role("heading", name="Message #")).to_be_visible()
        expect(sender.locator("#approval-panel")).to_contain_text("Waiting for another operator to approve")
        expect(sender.get_by_role("button", name="Approve")).to_have_count(0)
        _assert_accessible(sender, "a message awaiting approval, seen by its author")
        message_url = sender.url
        sender.evaluate("window.__noReload = 'still here'")

        worker = _start_worker(app)
        try:
            admin.goto(message_url)
            _assert_accessible(admin, "a message awaiting approval, seen by an approver")
            admin.once("dialog", lambda dialog: dialog.accept())  # "Approve message #1 and send it to 3 recipients?"
            admin.get_by_role("button", name="Approve").click()
            expect(admin.locator("#approval-panel")).to_contain_text("Approved by op@example.com")
            for number in numbers:
                expect(_badge(sender, number)).to_have_attribute("data-status", "delivered")
            expect(sender.locator("#approval-panel")).to_contain_text("Approved by op@example.com")
            assert sender.evaluate("window.__noReload") == "still here", "the page reloaded instead of updating live"
        finally:
            errors = _stop(worker)
        assert "Traceback" not in errors, errors

        admin.get_by_role("link", name="Audit log for this message").click()
        log = admin.locator("table").first
        for text in ("Sent a message", "sam@example.com", "Approved a large send", "recipients: 3"):
            expect(log).to_contain_text(text)
        expect(log).not_to_contain_text("Added an operator")  # this message's entries only
        admin.get_by_role("link", name="Audit log", exact=True).click()
        for text in ("Added an operator", "Set a password from a link", "Logged in", "Was refused an action"):
            expect(log).to_contain_text(text)
        _assert_accessible(admin, "the audit log")
        browser.close()
