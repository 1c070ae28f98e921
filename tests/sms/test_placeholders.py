"""Placeholders: `{{field}}` and `{{ field | fallback }}` by plain substitution, and every
syntax error named with its position."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsdash.sms.placeholders import (
    PlaceholderSyntaxError,
    body_syntax_problem,
    field_key,
    parse,
    recipient_values,
)


def render(body: str, **values: str) -> str:
    return parse(body).render(values)


def test_fields_are_filled_in() -> None:
    body = "Hi {{first_name}}, your shift at {{site}} starts at {{time}}"
    assert render(body, first_name="Ada", site="Leeds", time="9:00") == "Hi Ada, your shift at Leeds starts at 9:00"


@pytest.mark.parametrize("placeholder", ["{{first_name}}", "{{ first_name }}", "{{  First_Name\t}}"])
def test_spacing_and_case_inside_a_placeholder_do_not_matter(placeholder: str) -> None:
    assert render(f"Hi {placeholder}!", first_name="Ada") == "Hi Ada!"


def test_fallback_is_used_when_the_value_is_missing_or_blank() -> None:
    body = "Hi {{ first_name | there }}!"
    assert render(body) == "Hi there!"
    assert render(body, first_name="  ") == "Hi there!"
    assert render(body, first_name="Ada") == "Hi Ada!"
    assert render("Hi {{first_name|}}!") == "Hi !"  # an empty fallback is a fallback
    assert render("{{ x | a | b }}") == "a | b"


def test_required_and_missing_fields() -> None:
    template = parse("{{a}} {{ b | x }} {{a}} {{c}}")
    assert template.fields == ["a", "b", "c"]
    assert template.required == ["a", "c"]
    assert template.missing({"a": "1", "c": " "}) == ["c"]
    assert not parse("no placeholders").is_personalised


@pytest.mark.parametrize(
    ("body", "offset", "words"),
    [
        ("Hi {{first_name", 3, "not closed"),
        ("Hi {{a {{b}}", 3, "not closed"),
        ("Cost {5}", 5, "single “{”"),
        ("Hi }} there", 3, "single “}”"),
        ("{{ }}", 0, "no field name"),
        ("x {{ user.name }}", 2, "not a field name"),
        ("x {{ 1 + 2 }}", 2, "not a field name"),
        ("x {{ a | b { }}", 2, "brace"),
        ("{% for x in y %}", 0, "single “{”"),
    ],
)
def test_unknown_syntax_is_an_error_with_its_position(body: str, offset: int, words: str) -> None:
    with pytest.raises(PlaceholderSyntaxError) as caught:
        parse(body)
    assert caught.value.offset == offset
    assert words in caught.value.reason


def test_the_position_is_given_as_line_and_column() -> None:
    assert body_syntax_problem("Hello\nHi {{name") == (
        "Placeholder error at line 2, column 4: “{{” is not closed with “}}”."
    )
    assert body_syntax_problem("Hi {{name}}") is None


@pytest.mark.parametrize(
    ("header", "key"),
    [("First Name", "first_name"), ("  SITE ", "site"), ("Shift-start (UTC)", "shift_start_utc"), ("%%", "")],
)
def test_field_key_is_lower_snake_case(header: str, key: str) -> None:
    assert field_key(header) == key


def test_recipient_values_derive_first_name_and_phone() -> None:
    assert recipient_values("Ada Lovelace", "+1415") == {"name": "Ada Lovelace", "first_name": "Ada", "phone": "+1415"}
    assert recipient_values("Ada Lovelace", "+1", {"first_name": "Countess"})["first_name"] == "Countess"
    assert recipient_values(None, "+1") == {"phone": "+1"}


@given(st.text(), st.text())
def test_values_are_inserted_verbatim_whatever_they_contain(value: str, other: str) -> None:
    """Braces, HTML, Jinja and formulas in a value are text: never parsed, escaped or evaluated."""
    assert (
        render("<{{a}}|{{b|x}}>", a=value, b=other)
        == f"<{value if value.strip() else ''}|{other if other.strip() else 'x'}>"
    )


@given(st.text(alphabet=st.characters(blacklist_characters="{}")))
def test_a_body_without_braces_renders_as_itself(body: str) -> None:
    assert render(body, a="1") == body


@given(st.sampled_from(["{{ 7*7 }}", "{{ a.__class__ }}", "{{ config }}", "=1+1", "<script>x</script>", "{{a}}"]))
def test_a_value_that_looks_like_code_is_not_rendered_again(value: str) -> None:
    assert render("{{a}}{{b|y}}", a=value, b=value) == value + value
