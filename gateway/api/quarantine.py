"""``/api/v1/quarantine``: non-deliverable push tokens (viewer reads, marketer releases)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from domain import quarantine
from gateway.api.common import no_content
from gateway.api.pagination import page_query, paginate
from gateway.api.schemas import QuarantinePage
from gateway.auth import app_scope, requires
from gateway.http import query_choice, query_int
from gateway.openapi import operation
from gateway.runtime import db
from store.models import Address

bp = Blueprint("quarantine", __name__)
STATUSES = (quarantine.VALID, quarantine.WITH_ERRORS, quarantine.QUARANTINE, quarantine.DENYLISTED)


@bp.get("/quarantine")
@operation(
    "List tokens with errors or in quarantine",
    tag="quarantine",
    response=QuarantinePage,
    query={
        **page_query(),
        "app_id": ("integer", "only this app's"),
        "status": ("string", "valid|with_errors|quarantine|denylisted"),
    },
)
@requires("viewer")
def list_quarantine() -> Response:
    # A read changes nothing: tokens registered again after APNs called them unregistered are
    # released when the app's next delivery is analysed (domain.analysis), not by a listing.
    session = db()
    app_id = query_int("app_id", 0, minimum=0)
    stmt = quarantine.list_query(app_id=app_id or None, status=query_choice("status", STATUSES), apps=app_scope())
    return jsonify(paginate(session, stmt, Address.id, lambda rows: [quarantine.describe(a) for a in rows]))


@bp.delete("/quarantine/<int:address_id>")
@operation("Release a token from quarantine (its subscriptions are enabled again)", tag="quarantine", status=204)
@requires("marketer")
def release(address_id: int) -> tuple[str, int]:
    session = db()
    quarantine.release(session, address_id, apps=app_scope())
    session.commit()
    return no_content()
