"""Console: API keys (``/console/api-keys/``), admin only like ``/api/v1/keys``.

The list shows each key's name, role, the apps it is limited to, its lookup prefix
(``pgk_<lookup>_…``, never the secret, which is not stored), when it was created and revoked.
Creating a key calls :func:`domain.keys.create_key` and answers the POST itself with the full key
(Cache-Control: no-store, as every console page): the key is never put in the session cookie or a
flash message, and no later page can show it again. Revoking calls :func:`domain.keys.revoke_key`:
requests with the key get 401 from then on.
"""

from __future__ import annotations

import logging
from typing import Annotated

from flask import Blueprint, flash, redirect, render_template, request, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.wrappers import Response

from core.errors import ClientError
from domain import apps, keys
from domain.fields import ID_MAX, Name
from gateway.console.access import current_user, requires
from gateway.runtime import db

bp = Blueprint("keys", __name__, url_prefix="/api-keys")
log = logging.getLogger("pushgate.console")

ROLE_LABELS = {
    "viewer": "viewer (reads)",
    "marketer": "marketer (profiles, deliveries, audiences, quarantine)",
    "admin": "admin (also apps, API keys and sync jobs)",
}


class KeyForm(BaseModel):
    """The creation form: as ``POST /api/v1/keys`` takes it; no app ticked means every app."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    role: keys.Role
    apps: list[Annotated[int, Field(gt=0, le=ID_MAX)]] = Field(default_factory=list, max_length=1000)


def _errors(exc: ValidationError) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "name"
        found.setdefault(field, error["msg"])
    if "role" in found:  # pydantic lists the literal's values quoted; the form offers them by name
        found["role"] = "Choose one of the roles listed."
    return found


def _user_id() -> int | None:
    user = current_user()
    return user.id if user is not None else None


def _index(values: dict[str, object] | None = None, errors: dict[str, str] | None = None) -> str:
    session = db()
    return render_template(
        "console/keys/index.html",
        title="API keys",
        keys=list(reversed(keys.list_keys(session, include_revoked=True))),
        app_names=apps.names(session),
        roles=ROLE_LABELS,
        values=values or {"role": "viewer", "apps": []},
        errors=errors or {},
    )


@bp.get("/")
@requires("admin")
def index() -> str:
    return _index()


@bp.post("/")
@requires("admin")
def create() -> tuple[str, int]:
    values: dict[str, object] = {
        "name": request.form.get("name", "")[:1000],
        "role": request.form.get("role", ""),
        "apps": request.form.getlist("apps")[:1001],
    }
    try:
        data = KeyForm.model_validate(values)
    except ValidationError as exc:
        return _index(values, _errors(exc)), 400
    session = db()
    try:
        key, full = keys.create_key(session, name=data.name, role=data.role, apps=data.apps)
    except ClientError as exc:  # an app deleted since the form was shown
        session.rollback()
        return _index(values, {"apps": exc.message}), exc.status
    session.commit()
    log.info("API key %s (%s) created by console user %s", key.id, key.role, _user_id())
    page = render_template(
        "console/keys/created.html",
        title="API key created",
        key=key,
        full_key=full,
        app_names=apps.names(session),
        roles=ROLE_LABELS,
    )
    return page, 201


@bp.post("/<int:key_id>/revoke")
@requires("admin")
def revoke(key_id: int) -> Response:
    session = db()
    key = keys.revoke_key(session, key_id)
    session.commit()
    log.info("API key %s revoked by console user %s", key_id, _user_id())
    flash(f"The API key {key.name} is revoked: requests with it get 401 from now on.", "success")
    return redirect(url_for(".index"), 303)
