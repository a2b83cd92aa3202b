"""Console: audiences (viewer reads). The list with each audience's size, source segment and last
import, filtered by segment id; an audience's page with its import history and its members.

Audiences are made by the segment sync (one per Platform segment), never here. Lists page by id
(``after`` = the last id shown, as the API's cursor does) and cost a few queries per page of rows,
whatever their number (:func:`domain.audiences.summaries_page`, :func:`domain.audiences.members_page`).
"""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for

from core.errors import NotFound
from domain import audiences
from domain.fields import ID_MAX, lookup_key
from gateway.console.access import requires
from gateway.http import query_choice, query_int
from gateway.runtime import db

bp = Blueprint("audiences", __name__, url_prefix="/audiences")

PAGE_SIZE = 50
#: How many of an audience's newest segment files its page lists.
HISTORY_SHOWN = 50
SEGMENT_ID_MAX = 255
#: The member status filter's choices, as the API's ``status`` query names them.
STATUS_CHOICES = [
    ("", "Current members"),
    ("realized", "Realized (entered)"),
    ("existing", "Existing"),
    ("exited", "Exited (left)"),
]


def after_id() -> int | None:
    """Where a page starts (``after``: the last id of the page before); a bad value is a 400 page."""
    return query_int("after", 0, minimum=0, maximum=ID_MAX) or None


@bp.get("/")
@requires("viewer")
def index() -> str | tuple[str, int]:
    raw = request.args.get("segment_id", "").strip()
    segment_id = lookup_key(raw, SEGMENT_ID_MAX) if raw else None
    if raw and segment_id is None:
        error = f"A segment id is at most {SEGMENT_ID_MAX} printable characters."
        page = render_template(
            "console/audiences/index.html",
            rows=[],
            segment_id=raw,
            errors={"segment_id": error},
            next_url=None,
            first_url=None,
        )
        return page, 400
    after = after_id()
    rows, next_after = audiences.summaries_page(db(), segment_id=segment_id, after=after, limit=PAGE_SIZE)
    return render_template(
        "console/audiences/index.html",
        rows=rows,
        segment_id=segment_id or "",
        errors={},
        next_url=url_for(".index", segment_id=segment_id, after=next_after) if next_after else None,
        first_url=url_for(".index", segment_id=segment_id) if after else None,
    )


@bp.get("/<audience_id>")
@requires("viewer")
def show(audience_id: str) -> str:
    session = db()
    number = int(audience_id) if audience_id.isascii() and audience_id.isdigit() and len(audience_id) < 20 else 0
    audience = audiences.find(session, number)
    if audience is None:
        raise NotFound(f"no audience with id {audience_id[:40]}", code="unknown_audience")
    status = query_choice("status", audiences.MEMBER_STATUSES)
    after = after_id()
    members, next_after = audiences.members_page(session, audience.id, status, after=after, limit=PAGE_SIZE)
    return render_template(
        "console/audiences/show.html",
        audience=audience,
        size=audiences.sizes(session, [audience.id]).get(audience.id, 0),
        counts=audiences.status_counts(session, audience.id),
        history=audiences.imports(session, audience.id, HISTORY_SHOWN),
        history_limit=HISTORY_SHOWN,
        members=members,
        status=status or "",
        status_choices=STATUS_CHOICES,
        next_url=url_for(".show", audience_id=audience.id, status=status, after=next_after) if next_after else None,
        first_url=url_for(".show", audience_id=audience.id, status=status) if after else None,
    )
