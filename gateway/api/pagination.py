"""Keyset pagination shared by every list endpoint.

Query parameters: ``limit`` (default ``PUSHGATE_PAGE_SIZE``, at most ``PUSHGATE_MAX_PAGE_SIZE``),
``cursor`` and ``sort``. Rows are ordered by id, ascending or descending, and a page starts after
the id its cursor carries, so pages stay stable while rows are added (no OFFSET drift) and each page
is one index range scan. The response is ``{"items": [...], "next_cursor": str | null}``; null means
this was the last page.

**Sorting.** ``sort`` names a key and ``-key`` reverses it; a list names the keys it takes
(:data:`CREATION`: ``created_at`` and ``id``, so ``created_at``, ``-created_at``, ``id``, ``-id``)
and whether it starts with the newest (deliveries and sync runs do). Anything else is a 400 naming
the values allowed. Every key is creation order, read as id order: a row's id and its
``created_at`` (``started_at`` for a run) are both given when it is inserted, the id by the
database's sequence and the time by the inserting process's clock (``store.types.utcnow``), and
nothing changes either afterwards, so the two orders are the same but for rows inserted within
the same few milliseconds by different processes (or hosts whose clocks disagree), which the ids
put in the order the database took them. Ordering by id keeps every order one scan of the primary
key, with no index on ``created_at`` and no ties to break.

**Cursors** are opaque to clients (URL-safe base64 of a versioned string) and carry the direction
they were made for: a cursor continues in its own direction when ``sort`` is absent (a walk begun
before a list's default changed goes on as it began), and is a 400 under the other direction. A
cursor made before sorting existed is an ascending one. A malformed cursor is a 400.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import request
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.errors import BadRequest
from gateway.http import query_choice, query_int
from gateway.openapi import QueryParam
from gateway.runtime import runtime

T = TypeVar("T")

ID_MAX = 2**63 - 1
_CURSOR = re.compile(r"^v1(d?):(\d{1,19})$")  # v1d: pages running downwards
#: The sort keys of a list whose rows have ``created_at``: both are creation order.
CREATION = ("created_at", "id")


def encode_cursor(last_id: int, *, descending: bool = False) -> str:
    text = f"v1{'d' if descending else ''}:{last_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[int, bool] | None:
    """The id a page starts after and whether the pages run downwards; None for the first page.
    400 when it is not one of ours."""
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    match = _CURSOR.match(text)
    if match is None or int(match.group(2)) > ID_MAX:
        raise BadRequest("query parameter cursor is not a cursor this API returned", code="invalid_cursor")
    return int(match.group(2)), match.group(1) == "d"


def page_limit() -> int:
    settings = runtime().settings
    return query_int("limit", settings.page_size, minimum=1, maximum=settings.max_page_size)


def sort_values(keys: Sequence[str]) -> tuple[str, ...]:
    """The values ``sort`` takes for ``keys``: each key, then its reverse."""
    return tuple(value for key in keys for value in (key, f"-{key}"))


def descending(keys: Sequence[str], newest_first: bool, cursor: tuple[int, bool] | None) -> bool:
    """Whether this request's page runs from the newest row down (see the module docstring)."""
    sort = query_choice("sort", sort_values(keys))
    if sort is None:
        return cursor[1] if cursor is not None else newest_first
    down = sort.startswith("-")
    if cursor is not None and cursor[1] != down:
        raise BadRequest(
            f"query parameter cursor belongs to the other order than sort={sort}; start again without a cursor",
            code="invalid_cursor",
        )
    return down


def paginate(
    session: Session,
    stmt: Select[T],
    id_column: InstrumentedAttribute[int],
    render: Callable[[Sequence[T]], list[dict[str, Any]]],
    *,
    sorts: Sequence[str] = CREATION,
    newest_first: bool = False,
) -> dict[str, Any]:
    """Run one page of ``stmt`` (a select of one entity) and render it as the list response.
    ``sorts`` are the keys ``sort`` may name (each an order of ``id_column``)."""
    limit = page_limit()
    cursor = decode_cursor(request.args.get("cursor"))
    down = descending(sorts, newest_first, cursor)
    if cursor is not None:
        stmt = stmt.where(id_column < cursor[0] if down else id_column > cursor[0])
    rows = list(session.scalars(stmt.order_by(id_column.desc() if down else id_column).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(getattr(rows[-1], id_column.key), descending=down)
    return {"items": render(rows), "next_cursor": next_cursor}


def page_query(sorts: Sequence[str] = CREATION, *, newest_first: bool = False) -> dict[str, QueryParam]:
    """The OpenAPI query parameters of a list paginated with these ``sorts``."""
    default = f"-{sorts[0]}" if newest_first else sorts[0]
    text = f"order of the items (-KEY reverses KEY); default {default}, {'newest' if newest_first else 'oldest'} first"
    if len(sorts) > 1:
        both = "both" if len(sorts) == 2 else "all"
        text += f"; {', '.join(sorts[:-1])} and {sorts[-1]} are {both} creation order"
    return {
        "limit": ("integer", "page size (default PUSHGATE_PAGE_SIZE, at most PUSHGATE_MAX_PAGE_SIZE)"),
        "cursor": ("string", "next_cursor of the previous page; omit for the first page"),
        "sort": ("string", text + ". A cursor goes on in the order it was made in", sort_values(sorts)),
    }
