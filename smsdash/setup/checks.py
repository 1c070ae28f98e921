"""The Twilio setup checklist, as data: `twilio check` prints it and the /setup page renders it.

Each item answers one question an operator has when statuses do not arrive ("Couldn't confirm
Twilio" in the original system): are the credentials right, is there a sender, is this a trial,
can Twilio reach us, and does the webhook route answer. Every network step has a short timeout so
the setup page stays fast, and no secret (auth token, session key) ever reaches the output.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from flask import Flask
from sqlalchemy import select
from twilio.base.exceptions import TwilioException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from smsdash.extensions import db
from smsdash.models import Contact, PendingCallback
from smsdash.twilio.client import build_client
from smsdash.twilio.error_codes import twilio_error, twilio_error_text
from smsdash.twilio.public_url import (
    INBOUND_PATH,
    STATUS_CALLBACK_PATH,
    public_base_url,
    unreachable_reason,
    webhook_base_urls,
)

State = Literal["ok", "warn", "fail"]
CHECK_CONNECT_TIMEOUT = 3.0
CHECK_READ_TIMEOUT = 5.0
DNS_TIMEOUT = 2.0
ACCOUNT_SID_PATTERN = re.compile(r"^AC[0-9a-fA-F]{32}$")
# The self-test callback names a fixed message SID that no delivery has, so the unmatched
# callback the webhook keeps for it in the pending inbox can be found again and removed.
SELF_TEST_SID = "SM5e1f7e57" + "0" * 24
CONFIGURE_HINT = "flask --app wsgi twilio configure-webhooks https://YOUR-PUBLIC-HOST"


@dataclass(frozen=True)
class CheckResult:
    """One checklist item: what was checked, how it went, what was seen, and how to fix it."""

    name: str
    state: State
    detail: str
    fix: str = ""


def run_checks(app: Flask, *, self_test: bool = True) -> list[CheckResult]:
    """Run the checklist against Twilio and this app; `self_test=False` skips the webhook POST.

    Items that need Twilio are reported as failed (not skipped) when the credentials are wrong,
    because then sending fails too.
    """
    config = app.config
    results: list[CheckResult] = []
    client, account, credentials = _check_credentials(config)
    results.append(credentials)
    results.append(_check_account(app, client, account))
    sender, owner = _check_sender(config, client)
    results.append(sender)
    base = public_base_url(config)
    results.append(_check_public_url(base, signed_for=webhook_base_urls(config)))
    results.append(_check_inbound_target(owner, base))
    if self_test:
        results.append(_check_webhook_route(app, base))
    secrets = [config.get("TWILIO_AUTH_TOKEN") or "", config.get("SECRET_KEY") or ""]
    return [_redact(result, secrets) for result in results]


def _redact(result: CheckResult, secrets: list[str]) -> CheckResult:
    """Belt and braces: whatever an SDK or server message echoed, a secret never gets printed."""
    detail, fix = result.detail, result.fix
    for secret in (s for s in secrets if len(s) >= 6):
        detail, fix = detail.replace(secret, "[hidden]"), fix.replace(secret, "[hidden]")
    return replace(result, detail=detail, fix=fix)


def _error_code(exc: Exception) -> int | None:
    return twilio_error(exc)[0]


def _check_client(config: Mapping[str, Any]) -> Client:
    """A client with short timeouts: a checklist must answer in seconds, not wait on a send's timeout."""
    return build_client(
        {
            **config,
            "TWILIO_CONNECT_TIMEOUT": min(float(config.get("TWILIO_CONNECT_TIMEOUT") or 5), CHECK_CONNECT_TIMEOUT),
            "TWILIO_READ_TIMEOUT": min(float(config.get("TWILIO_READ_TIMEOUT") or 15), CHECK_READ_TIMEOUT),
            "SEND_CONCURRENCY": 1,
        }
    )


def _check_credentials(config: Mapping[str, Any]) -> tuple[Client | None, Any, CheckResult]:
    """Fetch the account itself: the cheapest call that proves Twilio accepts the pair."""
    name = "Twilio credentials"
    sid = config.get("TWILIO_ACCOUNT_SID") or ""
    token = config.get("TWILIO_AUTH_TOKEN") or ""
    missing = [k for k, v in (("TWILIO_ACCOUNT_SID", sid), ("TWILIO_AUTH_TOKEN", token)) if not v]
    if missing:
        return (
            None,
            None,
            CheckResult(
                name,
                "fail",
                f"{' and '.join(missing)} not set.",
                "Copy the Account SID and Auth Token from the Twilio Console (Account > API keys & tokens) "
                "into the environment. With neither set, `make run` uses the built-in simulator.",
            ),
        )
    if not ACCOUNT_SID_PATTERN.match(sid):
        what = "an API Key SID (SK…), not an Account SID" if sid.startswith("SK") else "not an Account SID"
        return (
            None,
            None,
            CheckResult(
                name,
                "fail",
                f"TWILIO_ACCOUNT_SID={sid!r} is {what}: it must be AC followed by 32 hex characters.",
                "Set TWILIO_ACCOUNT_SID to the Account SID shown on the Twilio Console's home page.",
            ),
        )
    client = _check_client(config)
    try:
        account = client.api.v2010.accounts(sid).fetch()
    except TwilioException as exc:
        code = _error_code(exc)
        if code == 20003:
            return (
                None,
                None,
                CheckResult(
                    name,
                    "fail",
                    _rejected_detail(sid, token),
                    (
                        "Copy the Auth Token of this account (Twilio Console > Account > API keys & tokens) into "
                        "TWILIO_AUTH_TOKEN; if the SID is from another account, fix TWILIO_ACCOUNT_SID instead."
                    ),
                ),
            )
        return (
            None,
            None,
            CheckResult(
                name,
                "fail",
                f"Twilio refused to show account {sid}: {twilio_error_text(exc)}.",
                "Check TWILIO_ACCOUNT_SID and that the account is active.",
            ),
        )
    except requests.RequestException as exc:
        target = config.get("TWILIO_API_BASE_URL") or "https://api.twilio.com"
        return (
            None,
            None,
            CheckResult(
                name,
                "fail",
                f"Could not reach {target}: {type(exc).__name__}.",
                "Check the network (and TWILIO_API_BASE_URL when using the simulator).",
            ),
        )
    return client, account, CheckResult(name, "ok", f"Twilio accepts TWILIO_ACCOUNT_SID={sid} with its auth token.")


def _rejected_detail(sid: str, token: str) -> str:
    """Say which variable is most likely wrong on a 20003, without showing the token."""
    if token != token.strip():
        return "Twilio rejected the credentials (20003): TWILIO_AUTH_TOKEN has spaces or a newline around it."
    shape = (
        ""
        if re.fullmatch(r"[0-9a-fA-F]{32}", token)
        else (
            f" Twilio auth tokens are 32 hex characters; this one is {len(token)} characters"
            + ("." if re.fullmatch(r"[0-9a-fA-F]*", token) else ", not all hex.")
        )
    )
    return (
        f"Twilio rejected the credentials (20003): TWILIO_AUTH_TOKEN (not shown) is not the auth token "
        f"of account TWILIO_ACCOUNT_SID={sid}.{shape}"
    )


def _check_account(app: Flask, client: Client | None, account: Any) -> CheckResult:
    """Trial or full; on a trial, the verified numbers and the contacts that would get 21608."""
    name = "Account type"
    if client is None or account is None:
        return CheckResult(name, "fail", "Unknown: the credentials check failed.", "Fix the credentials first.")
    if account.status and account.status != "active":
        return CheckResult(
            name, "fail", f"Account {account.sid} is {account.status}.", "Reactivate the account in the Twilio Console."
        )
    if account.type != "Trial":
        return CheckResult(name, "ok", f"{account.type or 'Full'} account: messages can go to any number.")
    try:
        verified = sorted({c.phone_number for c in client.outgoing_caller_ids.list(limit=200)})
    except (TwilioException, requests.RequestException) as exc:
        return CheckResult(
            name,
            "warn",
            f"Trial account; its verified numbers could not be listed: {twilio_error_text(exc)}.",
            "Upgrade the account to send to any number.",
        )
    with app.app_context():
        phones = db.session.scalars(
            select(Contact.phone).where(Contact.phone.not_in(verified)).order_by(Contact.phone).limit(6)
        ).all()
    detail = (
        f"Trial account: Twilio delivers only to verified numbers "
        f"({', '.join(verified) if verified else 'none verified yet'}); any other number fails with 21608."
    )
    if phones:
        shown = ", ".join(phones[:5]) + (", …" if len(phones) > 5 else "")
        detail += f" Contacts that are not verified: {shown}."
    return CheckResult(
        name,
        "warn",
        detail,
        "Verify each recipient in the Twilio Console (Phone Numbers > Verified Caller IDs), or upgrade the account.",
    )


def _check_sender(config: Mapping[str, Any], client: Client | None) -> tuple[CheckResult, Any]:
    """The Messaging Service exists, or the From number is an SMS-capable number of this account.

    Also returns the Twilio object that owns the inbound webhook (service or number), if found."""
    name = "Sender"
    service_sid = config.get("TWILIO_MESSAGING_SERVICE_SID") or ""
    from_number = config.get("TWILIO_FROM_NUMBER") or ""
    if not service_sid and not from_number:
        return CheckResult(
            name,
            "fail",
            "Neither TWILIO_MESSAGING_SERVICE_SID nor TWILIO_FROM_NUMBER is set.",
            "Set TWILIO_FROM_NUMBER to one of your Twilio numbers (E.164, e.g. +14155550100), "
            "or TWILIO_MESSAGING_SERVICE_SID to a Messaging Service (MG…).",
        ), None
    if client is None:
        return CheckResult(name, "fail", "Unknown: the credentials check failed.", "Fix the credentials first."), None
    if service_sid:
        try:
            service = client.messaging.v1.services(service_sid).fetch()
        except (TwilioException, requests.RequestException) as exc:
            missing = _error_code(exc) == 20404
            return CheckResult(
                name,
                "fail",
                f"Messaging Service {service_sid} "
                + ("does not exist in this account." if missing else f"could not be read: {twilio_error_text(exc)}."),
                "Set TWILIO_MESSAGING_SERVICE_SID to a service listed under Messaging > Services.",
            ), None
        return CheckResult(
            name, "ok", f"Messaging Service {service_sid} ({service.friendly_name}) picks the sender."
        ), service
    try:
        numbers = client.incoming_phone_numbers.list(phone_number=from_number, limit=20)
    except (TwilioException, requests.RequestException) as exc:
        return CheckResult(
            name,
            "fail",
            f"Could not list this account's numbers: {twilio_error_text(exc)}.",
            "Check the credentials and the network.",
        ), None
    number = next((n for n in numbers if n.phone_number == from_number), None)
    if number is None:
        return CheckResult(
            name,
            "fail",
            f"TWILIO_FROM_NUMBER={from_number} is not a phone number of this account.",
            "Set TWILIO_FROM_NUMBER to a number listed under Phone Numbers > Active numbers, "
            "in E.164 form (+ and country code).",
        ), None
    if not (number.capabilities or {}).get("sms"):
        return CheckResult(
            name,
            "fail",
            f"{from_number} cannot send SMS (Twilio error 21606 on every send).",
            "Pick an SMS-capable number, or buy one under Phone Numbers > Buy a number.",
        ), number
    return CheckResult(
        name, "ok", f"TWILIO_FROM_NUMBER={from_number} is an SMS-capable number of this account."
    ), number


def resolve(host: str, timeout: float = DNS_TIMEOUT) -> list[str] | None:
    """The host's addresses, or None when it does not resolve within `timeout` seconds.

    getaddrinfo has no timeout of its own, so it runs in a thread we stop waiting for."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(socket.getaddrinfo, host, 443, proto=socket.IPPROTO_TCP)
    try:
        return sorted({str(info[4][0]) for info in future.result(timeout=timeout)})
    except (OSError, FutureTimeout):
        return None
    finally:
        pool.shutdown(wait=False)


def _check_public_url(base: str | None, signed_for: list[str]) -> CheckResult:
    """HTTPS, not local or private, and resolvable: the conditions for Twilio's callbacks to arrive.

    `signed_for` are the bases webhook signatures are checked on; with none, the check falls back
    to the host each request names, which this item warns about (see webhooks/signature.py)."""
    name = "Public base URL"
    fallback = (
        "Until then delivery statuses reach the dashboard only through the reconciler "
        "(the worker runs it; `flask --app wsgi sms reconcile` runs it now)."
    )
    if not signed_for:
        fallback += (
            " And the webhooks check signatures against the host each request names, so a callback "
            "signed for another deployment on this Twilio account (staging, a tunnel) is accepted here too."
        )
    reason = unreachable_reason(base)
    if reason:
        return CheckResult(
            name,
            "warn",
            f"Twilio cannot call this app back: {reason}. {fallback}",
            "Set BASE_HOST_URL to the app's public https URL (a deployed host, or an ngrok/"
            "cloudflared tunnel to this machine).",
        )
    assert base is not None
    host = urlsplit(base).hostname or ""
    addresses = resolve(host)
    if not addresses:
        return CheckResult(
            name,
            "fail",
            f"{host} (from BASE_HOST_URL={base}) does not resolve in DNS.",
            "Fix the host name in BASE_HOST_URL, or create its DNS record.",
        )
    private = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_global]
    if private:
        return CheckResult(
            name,
            "warn",
            f"{host} resolves to a private address ({', '.join(private)}). {fallback}",
            "Point BASE_HOST_URL at a host Twilio can reach from the internet.",
        )
    return CheckResult(name, "ok", f"{base} is public HTTPS and resolves ({', '.join(addresses[:3])}).")


def _check_inbound_target(owner: Any, base: str | None) -> CheckResult:
    """Replies (STOP, START) reach the app only when Twilio's inbound URL points at it."""
    name = "Inbound webhook at Twilio"
    if owner is None:
        return CheckResult(name, "warn", "Unknown: no sender could be read from Twilio.", "Fix the sender first.")
    is_service = hasattr(owner, "inbound_request_url")
    current = owner.inbound_request_url if is_service else owner.sms_url
    what = "The Messaging Service's inbound URL" if is_service else "The number's SMS URL"
    expected = f"{base}{INBOUND_PATH}" if base else None
    if expected and current == expected:
        return CheckResult(name, "ok", f"{what} is {current}.")
    return CheckResult(
        name,
        "warn",
        f"{what} is {current or 'not set'}"
        + (f", not {expected}" if expected else "")
        + "; STOP replies are not recorded by this app.",
        f"Run `{CONFIGURE_HINT}`.",
    )


def _check_webhook_route(app: Flask, base: str | None) -> CheckResult:
    """POST a signed, harmless status callback and expect 200 without any login.

    Through the public URL when Twilio could reach it (that proves the proxy and signature
    set-up end to end); otherwise in process, through `app.test_client()`, which proves only the
    route itself. The callback names SELF_TEST_SID, so the pending entry it leaves is removed."""
    name = "Webhook route"
    token = app.config.get("TWILIO_AUTH_TOKEN") or ""
    if not token:
        return CheckResult(
            name, "fail", "Cannot sign a test callback without TWILIO_AUTH_TOKEN.", "Set TWILIO_AUTH_TOKEN."
        )
    params = {
        "MessageSid": SELF_TEST_SID,
        "SmsSid": SELF_TEST_SID,
        "MessageStatus": "sent",
        "SmsStatus": "sent",
        "AccountSid": app.config.get("TWILIO_ACCOUNT_SID") or "",
        "ApiVersion": "2010-04-01",
    }
    public = unreachable_reason(base) is None and base is not None and resolve(urlsplit(base).hostname or "")
    # Signed as Twilio would sign it: for the first base the webhook accepts (none: as seen).
    url = f"{(webhook_base_urls(app.config) or ['http://localhost'])[0]}{STATUS_CALLBACK_PATH}"
    signature = RequestValidator(token).compute_signature(url, params)
    headers = {"X-Twilio-Signature": signature}
    post: Callable[[], int]
    if public:
        where = f"through the public URL {url}"

        def post() -> int:
            return requests.post(url, data=params, headers=headers, timeout=(3, 5), allow_redirects=False).status_code
    else:
        where = f"in process (app.test_client), because {unreachable_reason(base) or 'its host does not resolve'}"

        def post() -> int:
            path = urlsplit(url)
            return (
                app.test_client()
                .post(path.path, data=params, headers=headers, base_url=f"{path.scheme}://{path.netloc}")
                .status_code
            )

    try:
        status = post()
    except requests.RequestException as exc:
        return CheckResult(
            name,
            "fail",
            f"Signed test callback {where} got no answer ({type(exc).__name__}).",
            "Check that the app is deployed and BASE_HOST_URL points at it.",
        )
    finally:
        _forget_self_test(app)
    if status == 200:
        return CheckResult(name, "ok", f"A signed test callback got 200 without login, {where}.")
    hint = {
        403: "The signature did not validate: check TWILIO_AUTH_TOKEN, BASE_HOST_URL and PROXY_FIX_HOPS "
        "(the app must rebuild the exact URL Twilio called).",
        404: "The status webhook route is missing.",
        302: "The route asks for a login: the webhooks blueprint must be public.",
    }
    return CheckResult(
        name,
        "fail",
        f"A signed test callback got HTTP {status}, {where}.",
        hint.get(status, "Look at the app's log for this request."),
    )


def _forget_self_test(app: Flask) -> None:
    """Remove the unmatched callback the self-test left in the pending inbox."""
    with app.app_context():
        db.session.query(PendingCallback).filter(PendingCallback.message_sid == SELF_TEST_SID).delete()
        db.session.commit()
