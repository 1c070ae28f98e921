"""`twilio check` and `twilio configure-webhooks`, against the Twilio simulator."""

from __future__ import annotations

import pytest
from flask import Flask

from smsdash.extensions import db
from smsdash.models import Contact, PendingCallback
from smsdash.setup.checks import CheckResult, run_checks
from smsdash.simulator import Simulator

BAD_TOKEN = "0123456789abcdef0123456789abcdee"


def _item(results: list[CheckResult], name: str) -> CheckResult:
    return next(r for r in results if r.name == name)


def _check(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["twilio", "check", *args])
    return result.exit_code, result.output


def test_check_reports_a_trial_account_and_the_contacts_it_cannot_reach(
    twilio_app: Flask, simulator: Simulator
) -> None:
    simulator.set_knobs(trial=True, verified_numbers=["+14155550100"])
    with twilio_app.app_context():
        db.session.add_all(
            [Contact(name="Verified", phone="+14155550100"), Contact(name="Stranger", phone="+14155550199")]
        )
        db.session.commit()
    account = _item(run_checks(twilio_app, self_test=False), "Account type")
    assert account.state == "warn"
    assert "Trial" in account.detail and "+14155550100" in account.detail and "21608" in account.detail
    assert "not verified: +14155550199" in account.detail
    assert "Verified Caller IDs" in account.fix


def test_a_trial_with_no_verified_numbers_says_so(twilio_app: Flask, simulator: Simulator) -> None:
    simulator.set_knobs(trial=True)
    with twilio_app.app_context():
        db.session.add(Contact(name="Stranger", phone="+14155550199"))
        db.session.commit()
    account = _item(run_checks(twilio_app, self_test=False), "Account type")
    assert account.state == "warn"
    assert "none verified yet" in account.detail and "not verified: +14155550199" in account.detail


def test_check_reports_a_full_account_as_ok(twilio_app: Flask) -> None:
    assert _item(run_checks(twilio_app, self_test=False), "Account type").state == "ok"


def test_check_warns_about_a_localhost_base_url_and_self_tests_in_process(twilio_app: Flask) -> None:
    twilio_app.config["BASE_HOST_URL"] = "http://localhost:5000"
    code, output = _check(twilio_app)
    assert "[warn] Public base URL: Twilio cannot call this app back" in output
    assert "sms reconcile" in output  # the way statuses still arrive
    assert "[ok  ] Webhook route: A signed test callback got 200 without login, in process" in output
    assert "[ok  ] Twilio credentials" in output and "[ok  ] Sender" in output
    assert code == 0, output
    with twilio_app.app_context():  # the self-test leaves nothing in the pending inbox
        assert db.session.query(PendingCallback).count() == 0


def test_bad_credentials_fail_with_exit_code_1_and_never_print_the_token(twilio_app: Flask) -> None:
    good_token = twilio_app.config["TWILIO_AUTH_TOKEN"]
    twilio_app.config["TWILIO_AUTH_TOKEN"] = BAD_TOKEN
    code, output = _check(twilio_app)
    assert code == 1
    assert "[FAIL] Twilio credentials: Twilio rejected the credentials (20003): TWILIO_AUTH_TOKEN" in output
    assert BAD_TOKEN not in output and good_token not in output
    assert "[FAIL] Sender" in output  # nothing that needs Twilio can pass


def test_a_malformed_account_sid_is_named(twilio_app: Flask) -> None:
    twilio_app.config["TWILIO_ACCOUNT_SID"] = "SK" + "1" * 32
    credentials = _item(run_checks(twilio_app, self_test=False), "Twilio credentials")
    assert credentials.state == "fail"
    assert "TWILIO_ACCOUNT_SID" in credentials.detail and "API Key SID" in credentials.detail


def test_missing_credentials_fail(app: Flask) -> None:
    code, output = _check(app)
    assert code == 1
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN not set" in output


def test_a_from_number_of_another_account_fails(twilio_app: Flask) -> None:
    twilio_app.config["TWILIO_FROM_NUMBER"] = "+14155550123"
    sender = _item(run_checks(twilio_app, self_test=False), "Sender")
    assert sender.state == "fail" and "not a phone number of this account" in sender.detail


def test_the_messaging_service_is_checked(twilio_app: Flask, simulator: Simulator) -> None:
    twilio_app.config["TWILIO_MESSAGING_SERVICE_SID"] = simulator.messaging_service_sid
    assert _item(run_checks(twilio_app, self_test=False), "Sender").state == "ok"
    twilio_app.config["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "0" * 32
    sender = _item(run_checks(twilio_app, self_test=False), "Sender")
    assert sender.state == "fail" and "does not exist" in sender.detail


@pytest.mark.parametrize(
    "base, state, words",
    [
        ("https://smsdash.invalid", "fail", "does not resolve"),
        ("https://192.168.1.20", "warn", "private address"),
        ("https://8.8.8.8", "ok", "public HTTPS"),  # a literal address resolves without DNS
    ],
)
def test_public_base_url_rules(twilio_app: Flask, base: str, state: str, words: str) -> None:
    twilio_app.config["BASE_HOST_URL"] = base
    item = _item(run_checks(twilio_app, self_test=False), "Public base URL")
    assert (item.state, words in item.detail) == (state, True), item


@pytest.mark.parametrize("allowed", [(), ("smsdash.herokuapp.com",)])
def test_without_a_public_base_the_checklist_warns_that_any_host_is_believed(
    twilio_app: Flask, allowed: tuple[str, ...]
) -> None:
    twilio_app.config.update(BASE_HOST_URL="", TWILIO_WEBHOOK_HOSTS=allowed)
    results = run_checks(twilio_app)
    item = _item(results, "Public base URL")
    assert item.state == "warn"
    assert ("signed for another deployment" in item.detail) == (not allowed), item
    assert _item(results, "Webhook route").state == "ok"  # the self-test signs as Twilio would


def test_the_webhook_self_test_needs_the_auth_token(app: Flask) -> None:
    route = _item(run_checks(app), "Webhook route")
    assert route.state == "fail" and "TWILIO_AUTH_TOKEN" in route.detail


# -- configure-webhooks -------------------------------------------------------------------------


def _configure(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["twilio", "configure-webhooks", *args])
    return result.exit_code, result.output


def test_configure_webhooks_updates_the_messaging_service(twilio_app: Flask, simulator: Simulator) -> None:
    twilio_app.config["TWILIO_MESSAGING_SERVICE_SID"] = simulator.messaging_service_sid
    service = simulator.store.services[simulator.messaging_service_sid]
    before = service.status_callback
    code, output = _configure(twilio_app, "https://hooks.example.com/sms/")
    assert code == 0, output
    assert service.status_callback == "https://hooks.example.com/sms/webhooks/twilio/status"
    assert service.inbound_request_url == "https://hooks.example.com/sms/webhooks/twilio/inbound"
    assert f"status_callback: {before or '(not set)'} -> https://hooks.example.com/sms/webhooks/twilio/status" in output
    assert "BASE_HOST_URL is https://smsdash.example.com: set it to https://hooks.example.com/sms" in output
    code, output = _configure(twilio_app, "https://hooks.example.com/sms")
    assert "Nothing to change." in output


def test_configure_webhooks_dry_run_changes_nothing(twilio_app: Flask, simulator: Simulator) -> None:
    twilio_app.config["TWILIO_MESSAGING_SERVICE_SID"] = simulator.messaging_service_sid
    service = simulator.store.services[simulator.messaging_service_sid]
    before = (service.status_callback, service.inbound_request_url, service.date_updated)
    code, output = _configure(twilio_app, "https://hooks.example.com", "--dry-run")
    assert code == 0, output
    assert "-> https://hooks.example.com/webhooks/twilio/status" in output
    assert "Dry run: nothing was changed at Twilio." in output
    assert (service.status_callback, service.inbound_request_url, service.date_updated) == before


def test_configure_webhooks_for_a_bare_number_sets_its_sms_url_and_explains(
    twilio_app: Flask, simulator: Simulator
) -> None:
    code, output = _configure(twilio_app, "https://smsdash.example.com")
    assert code == 0, output
    number = next(n for n in simulator.store.numbers.values() if n.phone_number == simulator.from_number)
    assert number.sms_url == "https://smsdash.example.com/webhooks/twilio/inbound"
    assert "per message or per Messaging Service, not per phone number" in output
    assert "BASE_HOST_URL is" not in output  # it matches the app's own


@pytest.mark.parametrize(
    "base, words",
    [
        ("http://hooks.example.com", "not HTTPS"),
        ("hooks.example.com", "use https://hooks.example.com"),
        ("https://localhost:5000", "local name"),
        ("https://hooks.example.com/?x=1", "query or fragment"),
        ("https://hooks.example.com/webhooks/twilio/status", "is a webhook URL"),
    ],
)
def test_configure_webhooks_refuses_a_base_url_twilio_cannot_use(
    twilio_app: Flask, simulator: Simulator, base: str, words: str
) -> None:
    twilio_app.config["TWILIO_MESSAGING_SERVICE_SID"] = simulator.messaging_service_sid
    service = simulator.store.services[simulator.messaging_service_sid]
    before = service.status_callback
    code, output = _configure(twilio_app, base)
    assert code == 2 and words in output, output
    assert service.status_callback == before


def test_configure_webhooks_without_credentials_says_what_to_set(app: Flask) -> None:
    code, output = _configure(app, "https://hooks.example.com")
    assert code == 1 and "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must both be set" in output


def test_configure_webhooks_reports_a_messaging_service_twilio_does_not_have(twilio_app: Flask) -> None:
    twilio_app.config["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "0" * 32
    code, output = _configure(twilio_app, "https://hooks.example.com")
    assert code == 1 and "Twilio error 20404" in output and "twilio check" in output
