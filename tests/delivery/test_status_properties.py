"""The state machine as a property: one message's observations, in any order and repeated, end
where the same observations in order end, and no order ever moves a status backwards.

An example is a story of one message: the status callbacks Twilio sends for it (any of the early
statuses a Messaging Service reports, `sent`, then a fate: a receipt, `read`, a failure whose
first copy may lack its error code, or nothing), plus the send job's own outcome for it, which
races them: Twilio's answer to the create (`sent` with the SID), or a guess made without that
answer (it gave up after a lost answer, or met a STOP on the retry). Callbacks go through the
webhook as Twilio sends them (signed, our delivery id in the URL), so on PostgreSQL the
one-statement path for known deliveries is exercised too; the job's outcomes are applied as the
job records them. Each example uses fresh deliveries and SIDs, so examples share no state.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from smsdash.delivery.status import UNHEARD, apply_status, may_move
from smsdash.extensions import db
from smsdash.sending.job import gave_up
from tests.fixtures_webhooks import callback_params, delivery_row, events_of

STATUS = "/webhooks/twilio/status"
# The error code each failure carries when its callback has one.
CODES = {"undelivered": 30003, "failed": 30008}


@dataclass(frozen=True)
class Observation:
    """One thing heard about the message: a Twilio callback, or the send job's own outcome."""

    source: str  # "twilio", or "job" for the job's outcome
    status: str
    error_code: int | None = None


@dataclass(frozen=True)
class Story:
    in_order: tuple[Observation, ...]  # the job's outcome first, then Twilio's callbacks as sent
    shuffled: tuple[Observation, ...]  # the same, some repeated, in any order


@st.composite
def stories(draw: st.DrawFn) -> Story:
    callbacks = [Observation("twilio", s) for s in ("accepted", "queued", "sending") if draw(st.booleans())]
    if draw(st.booleans()):  # a `sent` callback can be lost
        callbacks.append(Observation("twilio", "sent"))
    fate = draw(st.sampled_from(["no receipt", "delivered", "read", "undelivered", "failed"]))
    if fate == "delivered" or (fate == "read" and draw(st.booleans())):
        callbacks.append(Observation("twilio", "delivered"))
    if fate == "read":
        callbacks.append(Observation("twilio", "read"))
    if fate in CODES:
        copies = draw(st.sampled_from([(None,), (CODES[fate],), (None, CODES[fate])]))
        callbacks.extend(Observation("twilio", fate, code) for code in copies)
    job = draw(st.sampled_from([None, "sent", "failed", "canceled"]))
    in_order = ((Observation("job", job),) if job else ()) + tuple(callbacks)
    repeats = draw(st.lists(st.sampled_from(callbacks), max_size=4)) if callbacks else []
    shuffled = draw(st.permutations(list(in_order) + repeats))
    return Story(in_order, tuple(shuffled))


def _apply(observation: Observation, delivery_id: int, sid: str, post: Callable[..., TestResponse], app: Flask) -> None:
    if observation.source == "twilio":
        extra = {"ErrorCode": str(observation.error_code)} if observation.error_code else {}
        response = post(STATUS, callback_params(sid, observation.status, **extra), query={"d": delivery_id})
        assert response.status_code == 200
        return
    with app.app_context():  # as the send job records it (sending/job.py)
        if observation.status == "sent":  # Twilio's answer to the create
            apply_status(delivery_id, "sent", source="job", sid=sid, payload={"sid": sid, "twilio_status": "queued"})
        elif observation.status == "failed":  # the round's last try timed out: a guess
            apply_status(
                delivery_id,
                "failed",
                source="job",
                error_message="Twilio did not answer in time",
                detail=gave_up(1),
                dedupe=False,
            )
        else:  # the retry's claim found the number opted out: a guess too
            apply_status(delivery_id, "canceled", source="job", detail="not sent: opted out")
        db.session.commit()


def _run(
    observations: tuple[Observation, ...],
    delivery_id: int,
    sid: str,
    post: Callable[..., TestResponse],
    app: Flask,
) -> tuple[tuple[str, bool, int | None, str | None], Counter[tuple[str, str, int | None]]]:
    """Apply `observations` in turn, checking that none moves the status backwards; the final
    (status, whether the SID is stored, error code, error message) and the timeline's events."""
    row = delivery_row(app, delivery_id)
    for observation in observations:
        before = row
        _apply(observation, delivery_id, sid, post, app)
        row = delivery_row(app, delivery_id)
        guessed = before.status in UNHEARD and before.external_message_id is None
        assert row.status == before.status or may_move(before.status, row.status) or guessed, (
            f"{observation} moved {before.status} back to {row.status}"
        )
    assert row.external_message_id in (None, sid)
    events = Counter((e.event_type, e.source, e.error_code) for e in events_of(app, delivery_id))
    return (row.status, row.external_message_id == sid, row.error_code, row.error_message), events


def test_any_order_of_one_messages_observations_ends_where_the_in_order_sequence_does(
    app: Flask, make_delivery: Callable[..., int], post_signed: Callable[..., TestResponse]
) -> None:
    numbers = itertools.count()

    @given(stories())
    def check(story: Story) -> None:
        runs = []
        for observations in (story.in_order, story.shuffled):
            n = next(numbers)
            delivery_id = make_delivery(status="sending")  # claimed by the job, no SID yet
            runs.append(_run(observations, delivery_id, f"SM{n:032x}", post_signed, app))
        (expected, expected_events), (final, events) = runs
        assert final == expected, story
        assert events == expected_events, story

    check()
