"""``/api/v1/apps``: mobile apps and their provider credentials (admin writes, viewer reads).

Credentials go in once and never come out: responses show only their public parts (key id, team
id, certificate subject and expiry, FCM project and client e-mail), and log lines name apps by id
and name only. The user-key secret (domain.user_keys) comes out once, in the answer that made it.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, url_for

from domain import apps
from gateway.api.common import created, no_content
from gateway.api.pagination import page_query, paginate
from gateway.api.schemas import AppOut, AppPage
from gateway.auth import app_scope, require_app, requires
from gateway.http import json_body
from gateway.openapi import operation
from gateway.runtime import db, runtime
from store.models import App

bp = Blueprint("apps", __name__)
log = logging.getLogger("pushgate.api.apps")


@bp.post("/apps")
@operation(
    "Create an app",
    tag="apps",
    body=apps.AppCreate,
    response=AppOut,
    status=201,
    description="Give ios, android or both. Integration keys are generated when absent. APNs "
    "credentials are either a .p8 key (key_p8, key_id, team_id) or a certificate with its private "
    "key; FCM credentials are the service-account JSON object. Credentials are checked (the keys "
    "must load), stored encrypted and never returned. With user_key_verification optional or "
    "required the answer carries user_key_secret, the app's new user-key secret, this once. 409 when "
    "the name, an integration key, the Campaign Standard pkey or the Edge config id is already used.",
)
@requires("admin", every_app=True)
def create_app() -> tuple[Response, int]:
    data = json_body(apps.AppCreate)
    box = runtime().box
    app = apps.create_app(db(), box, data, any_token_uri=bool(runtime().settings.fcm_endpoint))
    db().commit()
    runtime().integration_keys.clear()
    log.info("app %s (%s) created", app.id, app.name)
    body = apps.describe(app, box)
    secret = apps.user_key_secret(app, box)  # a new app's secret is the one this request made
    if secret is not None:
        body["user_key_secret"] = secret
    return created(body, url_for(".get_app", app_id=app.id))


@bp.get("/apps")
@operation("List apps", tag="apps", response=AppPage, query=page_query())
@requires("viewer")
def list_apps() -> Response:
    box = runtime().box
    stmt = apps.list_query(app_scope())
    page = paginate(db(), stmt, App.id, lambda rows: [apps.describe(a, box) for a in rows])
    return jsonify(page)


@bp.get("/apps/<int:app_id>")
@operation("Get an app", tag="apps", response=AppOut)
@requires("viewer")
def get_app(app_id: int) -> Response:
    require_app(app_id)
    return jsonify(apps.describe(apps.get_app(db(), app_id), runtime().box))


@bp.patch("/apps/<int:app_id>")
@operation(
    "Change an app",
    tag="apps",
    body=apps.AppPatch,
    response=AppOut,
    description="Fields omitted are kept. A platform object changes the fields it gives (adding the "
    'platform if the app lacks it, which then needs bundle_id or package_name); "ios": null or '
    '"android": null removes that platform; "apns": null or "fcm": null removes the '
    'credentials; "integration_key": null generates a new key. 409 user_key_secret_missing when '
    "user_key_verification is turned on in an app without a secret: make it first with POST "
    "/api/v1/apps/{app_id}/user-key-secret.",
)
@requires("admin")
def update_app(app_id: int) -> Response:
    require_app(app_id)
    data = json_body(apps.AppPatch)
    box = runtime().box
    app = apps.update_app(db(), box, app_id, data, any_token_uri=bool(runtime().settings.fcm_endpoint))
    db().commit()
    runtime().integration_keys.clear()
    log.info("app %s (%s) changed: %s", app.id, app.name, ", ".join(sorted(data.model_fields_set)) or "nothing")
    return jsonify(apps.describe(app, box))


@bp.post("/apps/<int:app_id>/user-key-secret")
@operation(
    "Make a new user-key secret",
    tag="apps",
    response=AppOut,
    description="Replaces the app's user-key secret with a new one, returned as user_key_secret in this "
    "answer only. The app's backend computes HMAC-SHA256(secret, user key) in lower-case hex for the "
    "user who logs in, and the app sends it beside the user key (user_key_hash, or the Campaign Classic "
    "additional param userKeyHash). Hashes made with the previous secret stop vouching at once: with "
    "verification required, devices registering with them are stored unlinked until they send a new one. "
    "Works in any mode, so the backend can hold the secret before verification is turned on.",
)
@requires("admin")
def rotate_user_key_secret(app_id: int) -> Response:
    require_app(app_id)
    box = runtime().box
    app, secret = apps.rotate_user_key_secret(db(), box, app_id)
    db().commit()
    runtime().integration_keys.clear()
    log.info("app %s (%s): new user-key secret", app.id, app.name)
    return jsonify({**apps.describe(app, box), "user_key_secret": secret})


@bp.delete("/apps/<int:app_id>")
@operation(
    "Delete an app",
    tag="apps",
    status=204,
    description="Removes the app, its platforms and its subscriptions. 409 while deliveries reference the app.",
)
@requires("admin")
def delete_app(app_id: int) -> tuple[str, int]:
    require_app(app_id)
    apps.delete_app(db(), app_id)
    db().commit()
    runtime().integration_keys.clear()
    log.info("app %s deleted", app_id)
    return no_content()
