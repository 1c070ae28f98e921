"""Opt-outs: per sender, with the empty sender blocking every sender; recording is idempotent."""

from __future__ import annotations

from flask import Flask

from smsdash.delivery.optouts import is_opted_out, lift_opt_out, opted_out_among, record_opt_out
from smsdash.extensions import db

ALICE, BOB, CAROL = "+15005550006", "+15005550007", "+15005550008"
OURS, OTHER = "+15005550001", "MG" + "1" * 32


def test_opt_out_is_scoped_to_its_sender(app: Flask) -> None:
    with app.app_context():
        assert record_opt_out(ALICE, OURS, "inbound")
        db.session.commit()
        assert is_opted_out(ALICE, OURS)
        assert not is_opted_out(ALICE, OTHER)
        assert not is_opted_out(BOB, OURS)


def test_empty_sender_blocks_every_sender(app: Flask) -> None:
    with app.app_context():
        record_opt_out(ALICE, "", "operator")
        db.session.commit()
        assert is_opted_out(ALICE, OURS) and is_opted_out(ALICE, OTHER) and is_opted_out(ALICE)


def test_recording_twice_keeps_one_row(app: Flask) -> None:
    with app.app_context():
        assert record_opt_out(ALICE, OURS, "inbound")
        db.session.commit()
        assert not record_opt_out(ALICE, OURS, "twilio-21610")
        db.session.commit()
        assert lift_opt_out(ALICE, OURS)
        db.session.commit()
        assert not is_opted_out(ALICE, OURS)


def test_lifting_one_sender_keeps_the_all_senders_row(app: Flask) -> None:
    with app.app_context():
        record_opt_out(ALICE, "", "operator")
        record_opt_out(ALICE, OURS, "inbound")
        assert lift_opt_out(ALICE, OURS)
        assert not lift_opt_out(ALICE, OURS)
        db.session.commit()
        assert is_opted_out(ALICE, OURS)


def test_opted_out_among_answers_for_a_batch(app: Flask) -> None:
    with app.app_context():
        record_opt_out(ALICE, OURS, "inbound")
        record_opt_out(BOB, "", "operator")
        record_opt_out(CAROL, OTHER, "inbound")
        db.session.commit()
        assert opted_out_among([ALICE, BOB, CAROL, "+15005550009"], OURS) == {ALICE, BOB}
        assert opted_out_among([], OURS) == set()
