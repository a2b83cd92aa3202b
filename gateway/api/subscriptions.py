"""Subscriptions: the read API (viewer) and native registration (public, by integration key).

Native registration is for apps that ship without Adobe's SDKs. It is authorised by the app's
integration key, like the SDK endpoints, and its bodies are capped by the public limit
(``PUSHGATE_MAX_PUBLIC_BODY_BYTES``) rather than the API's. Every path ends in
:func:`domain.subscriptions.register`, so a native registration behaves exactly like an SDK one:
idempotent on (app, token), linked to the profile its user key names (where the app verifies user
keys, only when ``user_key_hash`` vouches for it: :mod:`domain.user_keys`).
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from core.errors import NotFound
from core.metrics import REGISTRATIONS, UNVERIFIED_USER_KEYS
from domain import apps, subscriptions
from domain.fields import SINGLE_LINE, ScalarParams
from gateway.api.common import no_content, query_text
from gateway.api.pagination import page_query, paginate
from gateway.api.schemas import RegistrationOut, SubscriptionOut, SubscriptionPage
from gateway.auth import require_app, requires
from gateway.http import json_body, query_bool, query_choice
from gateway.lookups import integration_key_owner
from gateway.openapi import operation
from gateway.runtime import db, runtime
from store.models import TOKEN_MAX, Subscription

bp = Blueprint("subscriptions", __name__)

DeviceText = Annotated[str, Field(max_length=255), SINGLE_LINE]
Token = Annotated[str, Field(min_length=1, max_length=TOKEN_MAX + 200), SINGLE_LINE]  # APNs: spaces, <>
UserKey = Annotated[str, Field(max_length=255), SINGLE_LINE]
# Checked by the verification, not here: a malformed hash vouches for nothing, like a wrong one.
UserKeyHash = Annotated[str, Field(max_length=128), SINGLE_LINE]
# Any storable string: a key no app has is answered 404 unknown_integration_key, as on the SDK paths.
IntegrationKey = Annotated[str, Field(min_length=1, max_length=200), SINGLE_LINE]


#: The short names the native API first accepted under ``device``, kept as input aliases.
SHORT_DEVICE_NAMES = {
    "imei": "device_imei",
    "name": "device_name",
    "model": "device_model",
    "brand": "device_brand",
    "manufacturer": "device_manufacturer",
}


class Device(BaseModel):
    """What the app knows about the device; fields omitted keep their stored value.

    The names are those every answer shows (``device_name``, ``device_model``, ...), so a client
    can send back what it read. The short names accepted before (``name``, ``model``, ``brand``,
    ``manufacturer``, ``imei``) are still accepted; giving both forms of one field is a 400.
    """

    model_config = ConfigDict(extra="forbid")
    device_imei: DeviceText | None = None
    device_name: DeviceText | None = None
    device_model: DeviceText | None = None
    device_brand: DeviceText | None = None
    device_manufacturer: DeviceText | None = None
    os_name: DeviceText | None = None
    os_version: DeviceText | None = None
    os_language: DeviceText | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_names(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not SHORT_DEVICE_NAMES.keys() & data.keys():
            return data
        renamed = dict(data)
        for short, full in SHORT_DEVICE_NAMES.items():
            if short in renamed:
                if full in renamed:
                    raise PydanticCustomError(
                        "duplicate_field", "give {short} or {full}, not both", {"short": short, "full": full}
                    )
                renamed[full] = renamed.pop(short)
        return renamed


class NativeRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    integration_key: IntegrationKey = Field(description="the integration key of the app's iOS or Android part")
    token: Token = Field(description="FCM registration token, or APNs device token in hex")
    user_key: UserKey | None = Field(
        default=None, description="who uses the device; sent on every call, absent or empty means nobody"
    )
    user_key_hash: UserKeyHash | None = Field(
        default=None,
        description="HMAC-SHA256(the app's user-key secret, user_key) in lower-case hex, from the app's "
        "backend; where the app verifies user keys, a user key links a profile only with the right one "
        "(without it the subscription is stored unlinked, with the same answer). Never stored",
    )
    device: Device | None = None
    params: ScalarParams | None = Field(default=None, description="additional params; replace the stored ones")


class NativeUnregistration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    integration_key: IntegrationKey
    token: Token


def _platform_for(integration_key: str) -> subscriptions.KeyOwner:
    platform = integration_key_owner(integration_key)
    if platform is None:
        raise NotFound("no app has this integration key", code="unknown_integration_key")
    return platform


@bp.post("/subscriptions")
@operation(
    "Register a device (native apps)",
    tag="subscriptions",
    body=NativeRegistration,
    response=RegistrationOut,
    status={201: "the subscription was created", 200: "the app had this token already: its subscription is refreshed"},
    public=True,
    description="Authorised by the integration key, not an API key. 201 when the subscription is "
    "created, 200 when the same (app, token) was already registered and is refreshed. The answer "
    "says only that the token is registered; the subscription's stored view (linked profile, "
    "device data) is read with an API key, GET /api/v1/subscriptions/{id}. 404 "
    "unknown_integration_key when no app has the key.",
)
def register() -> tuple[Response, int]:
    request.max_content_length = runtime().settings.max_public_body_bytes  # before reading the body
    data = json_body(NativeRegistration)
    session = db()
    platform = _platform_for(data.integration_key)
    device = {} if data.device is None else {name: getattr(data.device, name) for name in data.device.model_fields_set}
    registration, unverified = subscriptions.check_user_key(
        subscriptions.Registration(
            app_id=platform.app_id,
            platform=platform.platform,
            token=data.token,
            sdk="native",
            push_provider="apns" if platform.platform == "ios" else "fcm",
            user_key=data.user_key,
            sets_user_key=True,
            user_key_hash=data.user_key_hash,
            device=device,
            additional_params=data.params,
        ),
        platform,
        runtime().box,
    )
    sub_id, created = subscriptions.register(
        session, registration, reconciliation_field=runtime().settings.reconciliation_field
    )
    session.commit()
    REGISTRATIONS.labels("native", platform.platform, "created" if created else "updated").inc()
    if unverified is not None:
        UNVERIFIED_USER_KEYS.labels("native", platform.platform, unverified).inc()
    # Only that the token is registered: the stored view (profile, device data) would let anyone
    # holding an app's public integration key look people up by re-registering tokens.
    return jsonify(id=sub_id, status="registered"), 201 if created else 200


@bp.delete("/subscriptions")
@operation(
    "Unregister a device (native apps)",
    tag="subscriptions",
    body=NativeUnregistration,
    status=204,
    public=True,
    description="Authorised by the integration key. 404 when the app has no subscription for the token.",
)
def unregister() -> tuple[str, int]:
    request.max_content_length = runtime().settings.max_public_body_bytes  # before reading the body
    data = json_body(NativeUnregistration)
    session = db()
    platform = _platform_for(data.integration_key)
    if not subscriptions.unregister(session, app_id=platform.app_id, platform=platform.platform, token=data.token):
        raise NotFound("the app has no subscription for this token", code="unknown_subscription")
    session.commit()
    return no_content()


@bp.get("/apps/<int:app_id>/subscriptions")
@operation(
    "List an app's subscriptions",
    tag="subscriptions",
    response=SubscriptionPage,
    query={
        "platform": ("string", "ios or android"),
        "user_key": ("string", "only subscriptions with exactly this user key"),
        "disabled": ("boolean", "true: only disabled ones; false: only active ones"),
        **page_query(),
    },
)
@requires("viewer")
def list_subscriptions(app_id: int) -> Response:
    session = db()
    require_app(app_id)
    app = apps.get_app(session, app_id)
    stmt = subscriptions.subscriptions_query(
        app.id,
        platform=query_choice("platform", ("ios", "android")),
        user_key=query_text("user_key", 255),
        disabled=query_bool("disabled"),
    )
    page = paginate(session, stmt, Subscription.id, lambda rows: [subscriptions.describe(s) for s in rows])
    return jsonify(page)


@bp.get("/subscriptions/<int:subscription_id>")
@operation("Get a subscription", tag="subscriptions", response=SubscriptionOut)
@requires("viewer")
def get_subscription(subscription_id: int) -> Response:
    subscription = subscriptions.get(db(), subscription_id)
    require_app(subscription.app_id, f"no subscription with id {subscription_id}")
    return jsonify(subscriptions.describe(subscription))
