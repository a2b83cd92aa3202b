"""Keyset pages for the console's lists: a page is the rows past the key the previous page ended
at, in key order (ascending or descending), one index range scan however deep the page; the next
page's key is the last row's when more rows follow. (The JSON API pages the same way, with its
own opaque cursors: gateway/api/pagination.py.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])


def keyset(
    stmt: S, column: InstrumentedAttribute[int], *, after: int | None, limit: int, descending: bool = False
) -> S:
    """``stmt`` limited to the rows past ``after`` (below it when ``descending``), in ``column``'s
    order, one row more than ``limit`` (:func:`split_page` tells from it whether more follow)."""
    if after is not None:
        stmt = stmt.where(column < after if descending else column > after)
    return stmt.order_by(column.desc() if descending else column).limit(limit + 1)


def split_page(found: Sequence[T], limit: int, key: Callable[[T], int]) -> tuple[list[T], int | None]:
    """The page out of :func:`keyset`'s rows, and the key the next page starts past (None on the
    last page)."""
    rows = list(found[:limit])
    return rows, (key(rows[-1]) if len(found) > limit and rows else None)
