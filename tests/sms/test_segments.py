"""Segment counting: GSM-7 and UCS-2 limits, extension characters, emoji, the 1600-char cap."""

from __future__ import annotations

import pytest

from smsdash.sms.segments import ENCODING_GSM7, ENCODING_UCS2, MAX_BODY_CHARS, count_segments, describe_char


def test_empty_body_has_no_segments() -> None:
    result = count_segments("")
    assert (result.encoding, result.segments, result.remaining) == (ENCODING_GSM7, 0, 160)


@pytest.mark.parametrize("length, segments", [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)])
def test_gsm7_limits(length: int, segments: int) -> None:
    result = count_segments("a" * length)
    assert result.encoding == ENCODING_GSM7
    assert result.segments == segments
    assert result.ucs2_chars == ()


def test_gsm7_remaining_in_single_and_multi_part() -> None:
    assert count_segments("a" * 150).remaining == 10
    multi = count_segments("a" * 200)
    assert (multi.per_segment, multi.remaining) == (153, 153 * 2 - 200)


def test_gsm7_accented_and_greek_letters_stay_gsm() -> None:
    result = count_segments("Café à Zürich: Δ Ω £5 ¿qué? ñ")
    assert result.encoding == ENCODING_GSM7
    assert result.units == result.characters


@pytest.mark.parametrize("char", list("^{}\\[~]|€\f"))
def test_extension_characters_count_two(char: str) -> None:
    result = count_segments("a" + char)
    assert result.encoding == ENCODING_GSM7
    assert (result.characters, result.units) == (2, 3)


def test_extension_characters_push_into_second_segment() -> None:
    assert count_segments("a" * 158 + "€").segments == 1  # 160 septets
    assert count_segments("a" * 159 + "€").segments == 2  # 161 septets


def test_escape_pair_is_not_split_across_parts() -> None:
    # 152 septets then a 2-septet char: it cannot straddle the 153 boundary, so part 2 starts with it.
    result = count_segments("a" * 152 + "€" + "a" * 152)
    assert result.units == 306
    assert result.segments == 3


def test_one_non_gsm_char_makes_the_whole_body_ucs2() -> None:
    result = count_segments("a" * 100 + "ç")  # lower-case c-cedilla is not in GSM-7 (only Ç is)
    assert result.encoding == ENCODING_UCS2
    assert result.ucs2_chars == ("ç",)
    assert result.segments == 2  # 101 UTF-16 units > 70


@pytest.mark.parametrize("length, segments", [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_limits(length: int, segments: int) -> None:
    assert count_segments("ж" * length).segments == segments


def test_emoji_counts_two_utf16_units_and_is_reported() -> None:
    result = count_segments("Hi 😀 there 😀 ✓")
    assert result.encoding == ENCODING_UCS2
    assert (result.characters, result.units) == (14, 16)  # each emoji is a surrogate pair
    assert result.ucs2_chars == ("😀", "✓")


def test_emoji_at_the_boundary_moves_to_the_next_part() -> None:
    assert count_segments("ж" * 68 + "😀").segments == 1  # exactly 70 units
    assert count_segments("ж" * 69 + "😀").segments == 2  # 71 units
    # 66 units then a surrogate pair: the pair is not split over the 67-unit boundary.
    assert count_segments("ж" * 66 + "😀" + "ж" * 66).segments == 3


def test_body_over_1600_characters_is_too_long() -> None:
    assert not count_segments("a" * MAX_BODY_CHARS).too_long
    assert count_segments("a" * (MAX_BODY_CHARS + 1)).too_long


def test_invisible_characters_are_named() -> None:
    assert describe_char("\t") == "U+0009"
    assert describe_char("é") == "é"
