"""The /setup page renders the shared checklist (setup_checks.run_checks) with each failing item's fix."""

from __future__ import annotations

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
