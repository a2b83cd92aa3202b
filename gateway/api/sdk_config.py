"""``GET /api/v1/apps/{id}/sdk-config``: the SDK configuration and code an app team needs.

Marketer or admin. ``platform`` (ios | android) and ``sdk`` (campaign-classic | campaign-standard
| edge | native) are required; what comes back is described in :mod:`sdk_configs.generator`.
Refusals: 400 ``invalid_query`` for a missing or unknown choice, 404 for an unknown app, 409
``platform_missing`` / ``app_not_configured`` when the app lacks the platform or the identifier
the SDK needs, 409 ``public_url_not_set`` / ``public_url_unusable`` when ``PUSHGATE_PUBLIC_URL``
cannot be pointed at.
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import Field

from domain import apps
from gateway.api.schemas import Out
from gateway.auth import require_app, requires
from gateway.openapi import operation
from gateway.runtime import db, runtime
from sdk_configs.generator import AppFacts, check_choice, generate
from sdk_configs.keys import PLATFORMS, SDKS

bp = Blueprint("sdk_config", __name__)


class LegacySettingsOut(Out):
    integration_key: str
    marketing_host: str = Field(description="URL ending in /, as the legacy SDK's setMarketingHost takes it")
    tracking_host: str = Field(description="URL ending in /, as the legacy SDK's setTrackingHost takes it")


class NativeSettingsOut(Out):
    base_url: str
    integration_key: str
    registration_url: str = Field(description="POST (register) and DELETE (unregister) a token here")
    tracking_url: str = Field(description="GET with the push's _mId in hex and _dId; 1 received, 2 clicked")


class SdkConfigOut(Out):
    app_id: int
    app_name: str
    platform: Literal["ios", "android"]
    sdk: Literal["campaign-classic", "campaign-standard", "edge", "native"]
    public_url: str
    configuration: dict[str, str | bool | int] | None = Field(
        description="Experience Platform Mobile SDK configuration keys (MobileCore.updateConfiguration); "
        "null for native"
    )
    legacy: LegacySettingsOut | None = Field(description="legacy Campaign SDK settings; campaign-classic only")
    native: NativeSettingsOut | None = Field(description="pushgate's own registration API; native only")
    snippets: dict[str, str] = Field(description='{"kotlin": code} for android, {"swift": code} for ios')
    warnings: list[str] = Field(description="what may keep the SDK from reaching this gateway")


@bp.get("/apps/<int:app_id>/sdk-config")
@operation(
    "Get an app's SDK configuration and code",
    tag="apps",
    response=SdkConfigOut,
    query={
        "platform": ("string", "required: ios or android"),
        "sdk": ("string", "required: campaign-classic, campaign-standard, edge or native"),
    },
    description="The Experience Platform Mobile SDK configuration (or, for campaign-classic, also the "
    "legacy Campaign SDK settings; for native, pushgate's registration API) pointing at "
    "PUSHGATE_PUBLIC_URL, with a Kotlin or Swift snippet that applies it, registers the push token "
    "and tracks receives and clicks. 409 when the app lacks the platform or the identifier the SDK "
    "needs (campaign_standard_pkey and experience_cloud_org, edge_config_id), or when "
    "PUSHGATE_PUBLIC_URL is not set.",
)
@requires("marketer")
def get_sdk_config(app_id: int) -> Response:
    platform = check_choice("query parameter platform", request.args.get("platform", ""), PLATFORMS)
    sdk = check_choice("query parameter sdk", request.args.get("sdk", ""), SDKS)
    require_app(app_id)
    app = apps.get_app(db(), app_id)
    return jsonify(generate(AppFacts.of(app), platform, sdk, runtime().settings.public_url).as_dict())
