"""Cutting a list into fixed-size pieces, for work done a batch at a time (sends, fetches).

Python 3.11 has no `itertools.batched`; slicing keeps each piece the same kind of sequence as
the whole (a list stays a list, which RQ pickles as a job argument).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of `items`, each `size` long but the last."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
