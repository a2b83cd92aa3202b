"""``/api/v1/keys``: API keys over HTTP (admin only). The full key is shown once, at creation."""

from __future__ import annotations

import logging
from typing import Annotated

from flask import Blueprint, Response, g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from domain import keys
from domain.fields import ID_MAX, Name
from gateway.api.common import created, no_content
from gateway.api.pagination import page_query, paginate
from gateway.api.schemas import ApiKeyCreated, ApiKeyPage
from gateway.auth import requires
from gateway.http import json_body, query_bool
from gateway.openapi import operation
from gateway.runtime import db
from store.models import ApiKey

bp = Blueprint("keys", __name__)
log = logging.getLogger("pushgate.api.keys")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = Field(description="who or what uses the key")
    role: keys.Role = Field(
        description="admin manages apps and keys; marketer profiles, deliveries and audiences; viewer reads"
    )
    apps: list[Annotated[int, Field(gt=0, le=ID_MAX)]] | None = Field(
        default=None,
        max_length=1000,
        description="limit the key to these apps: it sees and acts on their subscriptions, deliveries, "
        "quarantine and SDK configurations only (404 for other apps), cannot create apps, manage keys or "
        "run sync jobs, and erases profiles only as admin; omitted: every app",
    )


@bp.get("/keys")
@operation(
    "List API keys",
    tag="keys",
    response=ApiKeyPage,
    query={"include_revoked": ("boolean", "also list revoked keys"), **page_query()},
)
@requires("admin", every_app=True)
def list_keys() -> Response:
    stmt = keys.list_query(include_revoked=bool(query_bool("include_revoked")))
    return jsonify(paginate(db(), stmt, ApiKey.id, lambda rows: [keys.describe(k) for k in rows]))


@bp.post("/keys")
@operation(
    "Create an API key",
    tag="keys",
    body=KeyCreate,
    response=ApiKeyCreated,
    status=201,
    description="The response's key field is the only time the full key is shown; only its hash is stored.",
)
@requires("admin", every_app=True)
def create_key() -> tuple[Response, int]:
    data = json_body(KeyCreate)
    key, full = keys.create_key(db(), name=data.name, role=data.role, apps=data.apps or ())
    db().commit()
    log.info("API key %s (%s) created by key %s", key.id, key.role, g.get("api_key_id"))
    return created({**keys.describe(key), "key": full})


@bp.delete("/keys/<int:key_id>")
@operation(
    "Revoke an API key",
    tag="keys",
    status=204,
    description="Requests with the key get 401 from now on. Revoking a revoked key is a no-op.",
)
@requires("admin", every_app=True)
def revoke_key(key_id: int) -> tuple[str, int]:
    keys.revoke_key(db(), key_id)
    db().commit()
    log.info("API key %s revoked by key %s", key_id, g.get("api_key_id"))
    return no_content()
