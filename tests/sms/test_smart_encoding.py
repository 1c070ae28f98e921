"""Twilio's Smart Encoding: what a Messaging Service makes of a body, and how the send job still
recognises its own message in what Twilio stores (the end-to-end case is in test_sending.py)."""

from __future__ import annotations

import pytest

from smsdash.simulator import Simulator
from smsdash.sms.smart_encoding import comparable, smart_encode
from smsdash.twilio.client import build_client

TRIAL_PREFIX = "Sent from your Twilio trial account - "


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("\u201cQuoted\u201d and \u2018single\u2019", "\"Quoted\" and 'single'"),
        ("\u00abGuillemets\u00bb", '"Guillemets"'),
        ("9\u201317 \u2014 or later\u2026", "9-17 - or later..."),
        ("Line\u00a0one\u2009two", "Line one two"),
        ("\uff21\uff22\uff23 \uff11\uff12\uff13", "ABC 123"),
        ("\u00bd price\u203c", "1/2 price!!"),
        ("zero\u200bwidth", "zerowidth"),
    ],
)
def test_smart_encode_replaces_what_twilio_lists(sent: str, stored: str) -> None:
    assert smart_encode(sent) == stored


@pytest.mark.parametrize(
    "body",
    [
        "Plain GSM text, \u00e9 and \u00a3 included",  # nothing to replace
        "\u201cParty\u201d tonight \U0001f389",  # the emoji keeps the whole body UCS-2
        "\u201c\u4f60\u597d\u201d",  # so do CJK characters
    ],
)
def test_smart_encode_leaves_a_body_alone_unless_that_makes_it_gsm7(body: str) -> None:
    assert smart_encode(body) == body


@pytest.mark.parametrize(
    "body",
    [
        "\u201cHi\u201d \u2014 see you at\u00a05",
        "\u201cParty\u201d tonight \U0001f389",
        "Tab\tand\u3000ideographic space",
    ],
)
def test_what_we_sent_compares_equal_to_what_twilio_stored(body: str) -> None:
    assert comparable(smart_encode(body)) == comparable(body)
    assert comparable(TRIAL_PREFIX + smart_encode(body)).endswith(comparable(body))


def test_spaces_compare_equal_however_many_twilio_writes() -> None:
    # Twilio's page shows a blank for a no-break space; its own calculator writes two spaces.
    assert comparable("at  5") == comparable("at\u00a05") == comparable("at 5")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("\u201cHi\u201d Ann", '"Ho" Ann'),
        ("Meet at 5", "Meet at 6"),
        ("Meet at 5", "Meet at5"),
    ],
)
def test_different_text_still_differs(ours: str, theirs: str) -> None:
    assert comparable(ours) != comparable(theirs)


@pytest.mark.parametrize(
    ("knob", "through_service", "rewritten"),
    [
        (True, True, True),
        (True, False, False),
        (False, True, False),
    ],
)
def test_simulator_smart_encodes_only_a_messaging_services_sends_when_asked(
    simulator: Simulator, knob: bool, through_service: bool, rewritten: bool
) -> None:
    simulator.set_knobs(smart_encoding=knob)
    sender = (
        {"messaging_service_sid": simulator.messaging_service_sid}
        if through_service
        else {"from_": simulator.from_number}
    )
    body = "\u201cHi\u201d \u2014 it\u2019s me"
    created = build_client(simulator.client_config()).messages.create(to="+15551230001", body=body, **sender)
    (stored,) = simulator.messages
    expected = '"Hi" - it\'s me' if rewritten else body
    assert (created.body, stored.body, stored.params["Body"]) == (expected, expected, body)


@pytest.mark.parametrize("knob", [True, False])
def test_the_simulators_messaging_service_reports_its_smart_encoding(simulator: Simulator, knob: bool) -> None:
    simulator.set_knobs(smart_encoding=knob)
    client = build_client(simulator.client_config())
    assert client.messaging.v1.services(simulator.messaging_service_sid).fetch().smart_encoding is knob
    assert [s.smart_encoding for s in client.messaging.v1.services.list()] == [knob]
