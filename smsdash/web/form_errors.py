"""Problems a view finds after a form's own validators ran (a number no contact has, a
recipient list with nobody left to text), shown beside the field like any other error."""

from __future__ import annotations

from typing import cast

from wtforms import Field


def add_error(field: Field, message: str) -> None:
    """Show `message` under `field`, as a failed validator would; only after `validate()`.

    Until validation runs, WTForms keeps a field's errors in an empty tuple, which is why its
    stubs type them as a Sequence; validation replaces it with the list the template reads."""
    cast(list[str], field.errors).append(message)
