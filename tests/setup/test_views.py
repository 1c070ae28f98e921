"""The /setup page renders the shared checklist (setup_checks.run_checks) with each failing item's fix."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient


def test_setup_page_loads_the_checklist_live(logged_in: FlaskClient) -> None:
    page = logged_in.get("/setup").get_data(as_text=True)
    assert 'hx-get="/setup/checks" hx-trigger="load"' in page


def test_checklist_names_failures_and_fixes_without_secrets(logged_in: FlaskClient) -> None:
    logged_in.application.config.update(TWILIO_ACCOUNT_SID="", TWILIO_AUTH_TOKEN="")
    html = logged_in.get("/setup/checks").get_data(as_text=True)
    assert 'data-state="fail"' in html and "How to fix:" in html
    assert "TWILIO_ACCOUNT_SID" in html
    assert "test-secret-key-not-for-production" not in html


def test_the_checklist_calls_twilio_with_no_transaction_open(
    twilio_app: Flask, logged_in: FlaskClient, twilio_in_transaction: Callable[[], list[str]]
) -> None:
    """The log-in check reads the operator first; that read must not stay open while the checks
    call Twilio and post to this app's own webhook."""
    twilio_app.config["BASE_HOST_URL"] = "http://localhost:5000"  # no DNS look-up; self-test in process
    html = logged_in.get("/setup/checks").get_data(as_text=True)
    assert "Webhook route" in html and 'data-state="ok"' in html
    assert twilio_in_transaction() == []
