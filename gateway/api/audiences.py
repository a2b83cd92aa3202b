"""``/api/v1/audiences``: audiences imported from Platform segments (viewer reads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, jsonify

from domain import audiences
from gateway.api.common import query_text
from gateway.api.pagination import page_query, paginate
from gateway.api.schemas import AudienceMemberPage, AudienceOut, AudiencePage
from gateway.auth import requires
from gateway.http import query_choice
from gateway.openapi import operation
from gateway.runtime import db
from store.models import Audience, AudienceMember

bp = Blueprint("audiences", __name__)


@bp.get("/audiences")
@operation(
    "List audiences",
    tag="audiences",
    response=AudiencePage,
    query={**page_query(), "segment_id": ("string", "only the audience of this Platform segment")},
)
@requires("viewer")
def list_audiences() -> Response:
    session = db()

    def render(rows: Sequence[Audience]) -> list[dict[str, Any]]:
        size = audiences.sizes(session, [a.id for a in rows])
        return [audiences.describe(a, size.get(a.id, 0)) for a in rows]

    stmt = audiences.list_query(segment_id=query_text("segment_id", 255))
    return jsonify(paginate(session, stmt, Audience.id, render))


@bp.get("/audiences/<int:audience_id>")
@operation("An audience: size, last import and the segment files applied to it", tag="audiences", response=AudienceOut)
@requires("viewer")
def get_audience(audience_id: int) -> Response:
    session = db()
    audience = audiences.get(session, audience_id)
    size = audiences.sizes(session, [audience.id]).get(audience.id, 0)
    return jsonify(audiences.describe(audience, size, audiences.files_applied(session, audience.id)))


@bp.get("/audiences/<int:audience_id>/members")
@operation(
    "An audience's members",
    tag="audiences",
    response=AudienceMemberPage,
    query={
        **page_query(("profile_id",)),
        "status": ("string", "realized|existing|exited (default: current members, not exited)"),
    },
)
@requires("viewer")
def list_members(audience_id: int) -> Response:
    session = db()
    audiences.get(session, audience_id)
    stmt = audiences.members_query(audience_id, query_choice("status", audiences.MEMBER_STATUSES))
    return jsonify(
        paginate(
            session,
            stmt,
            AudienceMember.profile_id,
            lambda rows: audiences.describe_members(session, list(rows)),
            sorts=("profile_id",),
        )
    )
