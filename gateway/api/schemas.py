"""Response models of API v1: what the domain ``describe`` functions return, as JSON Schemas.

They serve the OpenAPI document and the reference page; the tests validate real responses
against them (``extra="forbid"``), so a representation cannot drift from its documentation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApnsTokenOut(Out):
    auth: Literal["token"]
    key_id: str
    team_id: str
    environment: Literal["sandbox", "production"]


class ApnsCertificateOut(Out):
    auth: Literal["certificate"]
    subject: str = Field(description="the certificate's subject, RFC 4514")
    expires_at: datetime
    environment: Literal["sandbox", "production"]


class FcmOut(Out):
    project_id: str
    client_email: str


class IosOut(Out):
    bundle_id: str
    integration_key: str
    apns: ApnsTokenOut | ApnsCertificateOut | None = Field(description="public parts of the credentials")


class AndroidOut(Out):
    package_name: str
    integration_key: str
    fcm: FcmOut | None = Field(description="public parts of the service account")


class AppOut(Out):
    id: int
    name: str
    ios: IosOut | None
    android: AndroidOut | None
    campaign_standard_pkey: str | None
    edge_config_id: str | None
    experience_cloud_org: str | None
    user_key_verification: Literal["off", "optional", "required"] = Field(
        description="whether registrations must vouch for their user key with HMAC-SHA256(secret, user key)"
    )
    user_key_secret_set: bool = Field(description="whether the app has a user-key secret")
    user_key_secret: str | None = Field(
        default=None,
        description="the user-key secret, only in the answer that made it (a creation with verification on, "
        "POST /api/v1/apps/{app_id}/user-key-secret): shown once, store it in your backend, never in the app",
    )
    created_at: datetime
    updated_at: datetime


class AppPage(Out):
    items: list[AppOut]
    next_cursor: str | None = Field(description="pass as cursor to get the next page; null on the last")


class ProfileOut(Out):
    id: int
    external_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any]
    push_consent: Literal["y", "n", "u"]
    subscription_count: int
    subscription_ids: list[int] = Field(description="subscriptions linked to this profile")
    created_at: datetime
    updated_at: datetime


class ProfilePage(Out):
    items: list[ProfileOut]
    next_cursor: str | None


class ProfileRef(Out):
    id: int
    external_id: str


class DeviceOut(Out):
    device_imei: str | None
    device_name: str | None
    device_model: str | None
    device_brand: str | None
    device_manufacturer: str | None
    os_name: str | None
    os_version: str | None
    os_language: str | None


class SubscriptionOut(Out):
    id: int
    app_id: int
    platform: Literal["ios", "android"]
    token: str
    sdk: str = Field(description="campaign-classic | campaign-standard | edge | native")
    push_provider: str = Field(description="fcm | apns | apnsSandbox")
    user_key: str | None
    profile: ProfileRef | None = Field(description="the linked profile, if the user key matched one")
    ecid: str | None
    device: DeviceOut
    additional_params: dict[str, Any]
    disabled: bool
    created_at: datetime
    last_registered_at: datetime


class RegistrationOut(Out):
    id: int = Field(description="the subscription's id")
    status: Literal["registered"]


class SubscriptionPage(Out):
    items: list[SubscriptionOut]
    next_cursor: str | None


class ApiKeyOut(Out):
    id: int
    name: str
    role: Literal["admin", "marketer", "viewer"]
    prefix: str = Field(description="the key's public beginning, to recognise it")
    apps: list[int] | None = Field(description="the apps the key is limited to; null: every app")
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the full key: shown once, store it now")


class ApiKeyPage(Out):
    items: list[ApiKeyOut]
    next_cursor: str | None


class DeliveryCounts(Out):
    targeted: int = Field(description="broadLog rows, Ignored included")
    pending: int
    sent: int
    failed: int
    ignored: int
    cancelled: int
    received: int
    opened: int
    clicked: int
    resent_after_crash: int = Field(description="messages in flight at a worker crash and sent again")


class DeliveryOut(Out):
    id: int
    app_id: int
    name: str
    status: Literal["scheduled", "running", "completed", "cancelled", "failed"]
    message: dict[str, Any]
    target: dict[str, Any]
    platforms: list[Literal["ios", "android"]]
    schedule_at: datetime | None
    rate_per_second: float | None
    validity_seconds: int | None
    idempotency_key: str | None
    counts: DeliveryCounts
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    created_by: str | None = Field(description='a console user\'s e-mail, or "API key <name>"')
    cancelled_by: str | None
    proof: bool = Field(description="a proof sent from the console to test devices")


class DeliveryPage(Out):
    items: list[DeliveryOut]
    next_cursor: str | None


FAILURE_REASON = "Campaign's failure reason by name (user_unknown, unreachable, refused, ...)"
FAILURE_REASON_CODE = "the same reason as Campaign's number (1 user unknown, 3 unreachable, 20 refused, ...)"


class BroadLogOut(Out):
    id: int = Field(description="the _mId sent in the push")
    delivery_id: int
    subscription_id: int | None
    profile_id: int | None
    channel: int = Field(description="41 iOS, 42 Android")
    address: str | None
    status: Literal["ignored", "sent", "failed", "pending", "cancelled"]
    failure_type: Literal["hard", "soft", "ignored"] | None
    failure_reason: str | None = Field(description=FAILURE_REASON)
    failure_reason_code: int | None = Field(description=FAILURE_REASON_CODE)
    error_message: str | None
    provider_message_id: str | None
    attempts: int
    resent_after_crash: bool
    event_date: datetime | None


class BroadLogPage(Out):
    items: list[BroadLogOut]
    next_cursor: str | None


class QuarantineOut(Out):
    id: int
    app_id: int
    platform: Literal["ios", "android"]
    address: str
    status: Literal["valid", "with_errors", "quarantine", "denylisted"]
    error_count: int
    failure_reason: str | None = Field(description=FAILURE_REASON)
    failure_reason_code: int | None = Field(description=FAILURE_REASON_CODE)
    error_text: str | None
    first_error_at: datetime | None
    last_error_at: datetime | None
    unregistered_at: datetime | None


class QuarantinePage(Out):
    items: list[QuarantineOut]
    next_cursor: str | None


class AudienceFileOut(Out):
    name: str
    etag: str
    run_id: int | None
    applied_at: datetime
    entered: int
    existing: int
    exited: int


class AudienceOut(Out):
    id: int
    name: str
    segment_id: str | None = Field(description="the Platform segment id the audience is imported from")
    size: int = Field(description="current members (exited ones not counted)")
    last_import_at: datetime | None
    created_at: datetime | None
    files_applied: list[AudienceFileOut] | None = Field(
        default=None, description="newest segment files applied to it (only on GET /audiences/{id})"
    )


class AudiencePage(Out):
    items: list[AudienceOut]
    next_cursor: str | None


class AudienceMemberOut(Out):
    profile_id: int
    external_id: str | None
    status: Literal["realized", "existing", "exited"]
    entered_at: datetime
    updated_at: datetime


class AudienceMemberPage(Out):
    items: list[AudienceMemberOut]
    next_cursor: str | None


class SyncFileOut(Out):
    name: str
    status: Literal["applied", "failed", "blocked", "skipped"]
    rows: int
    applied: int
    rejected: int
    reason: str | None
    details: dict[str, Any]


class SyncSummaryOut(Out):
    files: int = 0
    applied_files: int = 0
    failed_files: int = 0
    blocked_files: int = 0
    rows: int = 0
    applied: int = 0
    rejected: int = 0
    details: list[SyncFileOut] = Field(default_factory=list)


class SyncRunOut(Out):
    id: int
    job: str
    trigger: Literal["cli", "api", "schedule", "console"]
    status: Literal["running", "succeeded", "failed", "refused"]
    summary: SyncSummaryOut
    error: str | None
    started_at: datetime
    ended_at: datetime | None


class SyncRunPage(Out):
    items: list[SyncRunOut]
    next_cursor: str | None


class SyncRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retry_failed: bool = Field(
        default=False, description="try again files that failed or were blocked earlier (same name and ETag)"
    )
    force: bool = Field(
        default=False,
        description="logs: export even a stream that ran less than PUSHGATE_SYNC_EXPORT_INTERVAL_HOURS ago (logged)",
    )
    streams: list[Literal["broadlog", "trackinglog", "quarantine", "preferences"]] | None = Field(
        default=None, min_length=1, description="logs, provision: only these streams (default: the configured ones)"
    )
