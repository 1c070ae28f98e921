"""Reading the audit page's filters: what cannot be read is named and left out, never guessed."""

from __future__ import annotations

from datetime import date

from smsdash.audit.query import AuditFilter, read_filter


def test_a_readable_filter_round_trips_through_its_query_args() -> None:
    args = {"actor": "3", "action": "contact.edit", "since": "2026-03-01", "until": "2026-03-02"}
    wanted = read_filter({**args, "target_type": "message", "target_id": "9"})
    assert wanted == AuditFilter("3", "contact.edit", date(2026, 3, 1), date(2026, 3, 2), "message", 9)
    assert wanted.problems == []
    assert read_filter(wanted.query_args()) == wanted


def test_dates_the_wrong_way_round_are_named() -> None:
    wanted = read_filter({"since": "2026-03-02", "until": "2026-03-01"})
    assert wanted.problems == ["The from date is after the to date: nothing can match."]


def test_unreadable_parts_are_left_out_and_explained() -> None:
    wanted = read_filter({"until": "31/12/2026", "target_id": "١٢", "action": "contact.burn"})
    assert (wanted.until, wanted.target_id, wanted.action) == (None, None, "")
    assert len(wanted.problems) == 3 and "use YYYY-MM-DD" in wanted.problems[1]
