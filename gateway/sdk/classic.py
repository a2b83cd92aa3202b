"""Campaign Classic registration (docs/protocols.md §1.1): ``/nms/mobile/1/register{Android,IOS,Iphone}.jssp``.

The SDK posts a form, treats any 200 as success, ignores the body and never retries; it skips the
call while token, userKey and params are unchanged, so the endpoint is an idempotent upsert keyed
by (app, token). An unknown ``mobileAppUuid`` gets a 404, which the legacy SDK reports as an
unknown integration key. Where the app verifies user keys, the hash travels as the additional
param ``userKeyHash``; a user key without a right one is stored unlinked, still with a 200.
"""

from __future__ import annotations

from flask import Response

from core.errors import BadRequest, NotFound
from core.metrics import REGISTRATIONS, UNVERIFIED_USER_KEYS
from domain.subscriptions import Registration, check_user_key, register
from gateway.http import form_fields
from gateway.lookups import integration_key_owner
from gateway.openapi import operation
from gateway.runtime import runtime, transaction
from gateway.sdk import public_blueprint
from gateway.sdk.params import parse_additional_params

bp = public_blueprint("classic")

SDK = "campaign-classic"
DEVICE_FORM_FIELDS = {
    "deviceImei": "device_imei",
    "deviceName": "device_name",
    "deviceModel": "device_model",
    "deviceBrand": "device_brand",
    "deviceManufacturer": "device_manufacturer",
    "osName": "os_name",
    "osVersion": "os_version",
    "osLanguage": "os_language",
}


def _register(platform: str) -> Response:
    fields = form_fields()
    token = fields.get("registrationToken", "")
    integration_key = fields.get("mobileAppUuid", "")
    if not token:
        raise BadRequest("registrationToken is missing", code="missing_field")
    if not integration_key:
        raise BadRequest("mobileAppUuid (the integration key) is missing", code="missing_field")
    part = integration_key_owner(integration_key)
    if part is None:
        raise NotFound("unknown mobileAppUuid: no app has this integration key", code="unknown_integration_key")
    app_id, key_platform = part.app_id, part.platform
    if key_platform != platform:
        raise BadRequest(
            f"integration key {integration_key} belongs to the {key_platform} part of its app, "
            f"but was sent to the {platform} registration endpoint",
            code="wrong_platform",
        )
    registration = Registration(
        app_id=app_id,
        platform=platform,
        token=token,
        sdk=SDK,
        push_provider="apns" if platform == "ios" else "fcm",
        user_key=fields.get("userKey", ""),
        sets_user_key=True,
        device={column: fields.get(name) for name, column in DEVICE_FORM_FIELDS.items() if name in fields},
        additional_params=parse_additional_params(fields.get("additionalParams", "")),
    )
    rt = runtime()
    registration, unverified = check_user_key(registration, part, rt.box)
    with transaction() as connection:
        _id, created = register(connection, registration, reconciliation_field=rt.settings.reconciliation_field)
    REGISTRATIONS.labels(SDK, platform, "created" if created else "updated").inc()
    if unverified is not None:
        UNVERIFIED_USER_KEYS.labels(SDK, platform, unverified).inc()
    return Response(status=200)


_DOC = dict(
    tag="Campaign Classic SDK",
    public=True,
    body_media_type="application/x-www-form-urlencoded",
    description="Form fields: registrationToken, mobileAppUuid, userKey, deviceImei, deviceName, "
    "deviceModel, deviceBrand, deviceManufacturer, osName, osVersion, osLanguage, additionalParams (XML). "
    "Where the app verifies user keys, the param userKeyHash carries HMAC-SHA256(the app's user-key secret, "
    "userKey) in hex; without a right one the subscription is stored unlinked (still 200), and the param "
    "is never stored.",
)


@bp.post("/nms/mobile/1/registerAndroid.jssp")
@operation("Register an Android FCM token (Campaign Classic SDK)", **_DOC)  # type: ignore[arg-type]
def register_android() -> Response:
    return _register("android")


@bp.post("/nms/mobile/1/registerIOS.jssp")
@operation("Register an iOS APNs token (Campaign Classic SDK)", **_DOC)  # type: ignore[arg-type]
def register_ios() -> Response:
    return _register("ios")


@bp.post("/nms/mobile/1/registerIphone.jssp")
@operation("Register an iOS APNs token (legacy alias of registerIOS.jssp)", **_DOC)  # type: ignore[arg-type]
def register_iphone() -> Response:
    return _register("ios")
