"""Campaign Standard (docs/protocols.md §2): the ``mobileAppV5`` registration and the ECID service's
``/id`` call that carries the push token when ``experienceCloud.server`` points at pushgate.

``/id`` must answer fast (Android gives up after 2 s) with JSON echoing ``d_mid``: a 200 that is
not JSON makes Android retry forever and block its identity queue, and any ``d_optout`` would
opt the app out. Unknown orgs get a 404, which the SDK drops without retrying.
"""

from __future__ import annotations

import re

from flask import Response, jsonify, request
from pydantic import BaseModel, Field

from core.errors import BadRequest, NotFound
from core.metrics import REGISTRATIONS
from domain import apps, identity
from gateway.http import json_object, validate
from gateway.openapi import operation
from gateway.runtime import db
from gateway.sdk import public_blueprint

bp = public_blueprint("standard")

ECID = re.compile(r"^[0-9A-Za-z\-]{1,64}$")
ID_SYNC_TTL = 604800


class StandardSubscription(BaseModel):
    """Body the Campaign Standard extension posts on launch."""

    marketingCloudId: str = Field(min_length=1, max_length=64)
    pushPlatform: str = Field(pattern="^(gcm|fcm|apns)$")


def _check_ecid(ecid: str, where: str) -> str:
    if not ECID.match(ecid):
        raise BadRequest(f"{where} is not an ECID (1-64 letters, digits or dashes)", code="invalid_ecid")
    return ecid


@bp.post("/rest/head/mobileAppV5/<pkey>/subscriptions/<ecid>")
@operation(
    "Register an app launch with its ECID (Campaign Standard SDK)",
    tag="Campaign Standard SDK",
    public=True,
    body=StandardSubscription,
)
def mobile_app_subscription(pkey: str, ecid: str) -> Response:
    body = validate(StandardSubscription, json_object())
    _check_ecid(ecid, "the ECID in the path")
    if body.marketingCloudId != ecid:
        raise BadRequest("marketingCloudId differs from the ECID in the path", code="invalid_ecid")
    session = db()
    app_id = apps.id_by_standard_pkey(session, pkey)
    if app_id is None:
        raise NotFound("unknown pkey: no app has this Campaign Standard pkey", code="unknown_pkey")
    linked = identity.record_registration(session, app_id=app_id, ecid=ecid, push_platform=body.pushPlatform)
    session.commit()
    if linked:
        REGISTRATIONS.labels(identity.SDK, identity.PLATFORMS[body.pushPlatform], "linked").inc()
    return jsonify({})


@bp.get("/id")
@operation(
    "ECID service sync carrying the push token (Identity extension, when experienceCloud.server is pushgate)",
    tag="Campaign Standard SDK",
    public=True,
    query={
        "d_orgid": ("string", "Experience Cloud org id of the app"),
        "d_mid": ("string", "the device's ECID"),
        "d_cid": ("string", "20919%01{FCM token} (Android) or 20920%01{APNs hex} (iOS); repeatable"),
    },
)
def ecid_sync() -> Response:
    org_id = request.args.get("d_orgid", "")
    ecid = _check_ecid(request.args.get("d_mid", ""), "d_mid")
    session = db()
    if not org_id or not identity.org_is_known(session, org_id):
        raise NotFound("unknown d_orgid: no app has this Experience Cloud org", code="unknown_org")
    for value in request.args.getlist("d_cid"):
        dpid, sep, token = value.partition("\x01")
        if sep and dpid in identity.PUSH_DPIDS:
            changed = identity.record_push_token(session, ecid=ecid, org_id=org_id, dpid=dpid, token=token)
            if changed:
                REGISTRATIONS.labels(identity.SDK, identity.PUSH_DPIDS[dpid], "linked").inc()
    session.commit()
    return jsonify(d_mid=ecid, id_sync_ttl=ID_SYNC_TTL)
