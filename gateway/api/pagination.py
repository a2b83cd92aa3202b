"""Keyset pagination shared by every list endpoint.

Query parameters: ``limit`` (default ``PUSHGATE_PAGE_SIZE``, at most ``PUSHGATE_MAX_PAGE_SIZE``) and
``cursor``. Rows are ordered by id ascending and a page starts after the id its cursor carries, so
pages stay stable while rows are added (no OFFSET drift) and each page is one index range scan.
The cursor is opaque to clients (URL-safe base64 of a versioned string); a malformed one is a 400.
The response is ``{"items": [...], "next_cursor": str | null}``; null means this was the last page.
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
from gateway.http import query_int
from gateway.runtime import runtime

T = TypeVar("T")

ID_MAX = 2**63 - 1
_CURSOR = re.compile(r"^v1:(\d{1,19})$")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id a page starts after; None for the first page. 400 when it is not one of ours."""
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    match = _CURSOR.match(text)
    if match is None or int(match.group(1)) > ID_MAX:
        raise BadRequest("query parameter cursor is not a cursor this API returned", code="invalid_cursor")
    return int(match.group(1))


def page_limit() -> int:
    settings = runtime().settings
    return query_int("limit", settings.page_size, minimum=1, maximum=settings.max_page_size)


def paginate(
    session: Session,
    stmt: Select[T],
    id_column: InstrumentedAttribute[int],
    render: Callable[[Sequence[T]], list[dict[str, Any]]],
) -> dict[str, Any]:
    """Run one page of ``stmt`` (a select of one entity) and render it as the list response."""
    limit = page_limit()
    after = decode_cursor(request.args.get("cursor"))
    if after is not None:
        stmt = stmt.where(id_column > after)
    rows = list(session.scalars(stmt.order_by(id_column).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(getattr(rows[-1], id_column.key))
    return {"items": render(rows), "next_cursor": next_cursor}


PAGE_QUERY: dict[str, tuple[str, str]] = {
    "limit": ("integer", "page size (default PUSHGATE_PAGE_SIZE, at most PUSHGATE_MAX_PAGE_SIZE)"),
    "cursor": ("string", "next_cursor of the previous page; omit for the first page"),
}
