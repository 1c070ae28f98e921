"""One body rule for both ways of sending: the compose form and `sms send` refuse the same
bodies in the same words, and count the same text the same way."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from smsdash.extensions import db
from smsdash.models import Message
from smsdash.sms.body import MAX_BODY_CHARS
from tests.conftest import csrf_token_from


def _messages(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Message.body).order_by(Message.id)))


def _post_compose(client: FlaskClient, body: str) -> Any:
    token = csrf_token_from(client.get("/messages/new").get_data(as_text=True))
    return client.post("/messages/new", data={"recipients": "+14155550104", "body": body, "csrf_token": token})


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("", "The message is empty: write the text to send."),
        (" \n\t  \n", "The message is empty: write the text to send."),
        ("a" * 1601, "The message is 1601 characters long; Twilio accepts at most 1600."),
    ],
    ids=["empty", "whitespace only", "one over"],
)
def test_form_and_cli_refuse_a_bad_body_in_the_same_words(
    app: Flask, logged_in: FlaskClient, runner: Any, body: str, words: str
) -> None:
    page = _post_compose(logged_in, body)
    assert page.status_code == 422
    assert f'<ul class="field-error" id="body-error"><li>{words}</li></ul>' in page.get_data(as_text=True)
    cli = runner.invoke(args=["sms", "send", "--to", "+14155550104", "--body", body])
    assert cli.exit_code == 2
    assert cli.output.rstrip().endswith(f"Invalid value for --body: {words}")
    assert _messages(app) == []


def test_the_limit_is_twilios_and_a_body_at_it_is_sent_both_ways(
    app: Flask, logged_in: FlaskClient, runner: Any
) -> None:
    assert MAX_BODY_CHARS == 1600  # Twilio's Messages API: Body up to 1,600 characters (error 21617)
    body = "a" * MAX_BODY_CHARS
    assert _post_compose(logged_in, body).status_code == 302
    assert runner.invoke(args=["sms", "send", "--to", "+14155550104", "--body", body]).exit_code == 0
    assert _messages(app) == [body, body]


def test_line_breaks_count_once_whichever_way_the_text_arrives(app: Flask, logged_in: FlaskClient, runner: Any) -> None:
    """A browser posts a textarea's line breaks as CRLF; the live counter and the CLI see LF.
    Sixteen 100-character lines are 1600 characters either way, and sent with LF."""
    typed = ("a" * 99 + "\n") * 16
    posted = typed.replace("\n", "\r\n")  # 1616 characters as the browser submits it
    token = csrf_token_from(logged_in.get("/messages/new").get_data(as_text=True))
    counter = logged_in.post("/messages/new/segments", data={"body": posted, "csrf_token": token})
    assert "<strong>1600</strong> characters" in counter.get_data(as_text=True)
    assert _post_compose(logged_in, posted).status_code == 302
    assert runner.invoke(args=["sms", "send", "--to", "+14155550104", "--body", typed]).exit_code == 0
    assert _messages(app) == [typed, typed]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message).where(Message.body.contains("\r"))) == 0
