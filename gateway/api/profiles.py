"""``/api/v1/profiles``: recipients by external id (marketer writes, viewer reads).

The external id is the last part of the path and may contain slashes (``<path:...>``), since
Campaign ids are not restricted to URL-safe characters; clients percent-encode it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, jsonify, url_for
from sqlalchemy.orm import Session

from core.errors import Forbidden
from domain import erasure, profiles
from gateway.api.common import created, no_content, query_text
from gateway.api.pagination import page_query, paginate
from gateway.api.schemas import ProfileOut, ProfilePage
from gateway.auth import app_scope, current_scope, requires
from gateway.http import json_body
from gateway.openapi import operation
from gateway.runtime import db, runtime
from store.models import Profile

bp = Blueprint("profiles", __name__)
log = logging.getLogger("pushgate.api.profiles")


@bp.put("/profiles/<path:external_id>")
@operation(
    "Create or update a profile",
    tag="profiles",
    body=profiles.ProfileIn,
    response=ProfileOut,
    status={201: "the profile was created", 200: "the profile existed and was updated"},
    description="Upsert by external id: 201 when the profile is created, 200 when it is updated. "
    "Fields omitted keep their stored value. Subscriptions registered earlier with a user key "
    "naming this profile (external_id or email, per PUSHGATE_RECONCILIATION_FIELD) are linked.",
)
@requires("marketer")
def put_profile(external_id: str) -> tuple[Response, int]:
    profiles.check_external_id(external_id)
    data = json_body(profiles.ProfileIn)
    session = db()
    profile, was_created = profiles.upsert_profile(
        session, external_id, data, reconciliation_field=runtime().settings.reconciliation_field
    )
    session.commit()
    log.info("profile %s %s", profile.id, "created" if was_created else "updated")
    payload = _render(session, [profile])[0]
    if was_created:
        return created(payload, url_for(".get_profile", external_id=external_id))
    return jsonify(payload), 200


@bp.get("/profiles/<path:external_id>")
@operation("Get a profile", tag="profiles", response=ProfileOut)
@requires("viewer")
def get_profile(external_id: str) -> Response:
    session = db()
    return jsonify(_render(session, [profiles.get_profile(session, external_id)])[0])


@bp.delete("/profiles/<path:external_id>")
@operation(
    "Erase a profile",
    tag="profiles",
    status=204,
    description="Erasure, in one transaction: the profile, its audience memberships and the subscriptions "
    "that name it (token, device data, ECID, params) with their quarantine entries and Campaign Standard "
    "identity rows are removed; broadLog and trackingLog rows stay for delivery counts with the profile, "
    "subscription, token and ECID cleared; the external id and e-mail are removed from delivery targets, "
    "sync rejects and details, and personalisation rows. The next `sync logs` asks the Platform's Privacy "
    "Service to delete the person too. A key limited to some apps erases only with the admin role.",
)
@requires("marketer")
def erase_profile(external_id: str) -> tuple[str, int]:
    scope = current_scope()
    if scope.apps is not None and scope.role != "admin":
        raise Forbidden("a key limited to some apps erases profiles only with the admin role")
    session = db()
    rt = runtime()
    erasure.erase_profile(session, external_id, reconciliation_field=rt.settings.reconciliation_field, box=rt.box)
    session.commit()
    return no_content()


@bp.get("/profiles")
@operation(
    "List profiles",
    tag="profiles",
    response=ProfilePage,
    query={"email": ("string", "only profiles with exactly this e-mail address"), **page_query()},
)
@requires("viewer")
def list_profiles() -> Response:
    stmt = profiles.list_query(query_text("email", 320))
    session = db()
    return jsonify(paginate(session, stmt, Profile.id, lambda rows: _render(session, rows)))


def _render(session: Session, rows: Sequence[Profile]) -> list[dict[str, Any]]:
    linked = profiles.subscription_ids(session, [p.id for p in rows], app_scope())
    return [profiles.describe(p, linked.get(p.id, [])) for p in rows]
