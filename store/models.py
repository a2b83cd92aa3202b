"""The tables, named after Adobe Campaign's data model (docs/protocols.md §4).

This module is the only place that knows tables. Status and reason columns hold Campaign's
numbers (see :mod:`store.codes`); readable names are derived where they are shown.
Provider credentials are stored only as Fernet ciphertext (``credentials``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from store.clock import ordered_now
from store.codes import DeliveryStatus
from store.types import JSONType, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TOKEN_MAX = 1024  # FCM tokens are ~160 characters, APNs 64 hex; room for growth, still indexable
#: Identifiers apps carry (integration keys, pkeys, Edge config ids, org ids). Campaign Standard
#: pkeys seen in published app configurations run to 199 characters.
PUBLIC_ID_MAX = 255


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ExportedTimestamps:
    """Timestamps of a table the Platform export reads in ``updated_at`` order: commit-ordered
    (:mod:`store.clock`)."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=ordered_now, onupdate=ordered_now)


class ApiKey(Base):
    """A key for the JSON API. Only a lookup prefix and a SHA-256 hash are kept."""

    __tablename__ = "api_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    lookup: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The apps the key is limited to; none: every app its role allows.
    app_ids: Mapped[list[ApiKeyApp]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class ApiKeyApp(Base):
    """An app an API key is limited to (migration 0009)."""

    __tablename__ = "api_key_app"
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_key.id", ondelete="CASCADE"), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("app.id", ondelete="CASCADE"), primary_key=True)


class App(Timestamps, Base):
    """A mobile application (Campaign's push service) with an iOS part and an Android part."""

    __tablename__ = "app"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    campaign_standard_pkey: Mapped[str | None] = mapped_column(String(PUBLIC_ID_MAX), unique=True)
    edge_config_id: Mapped[str | None] = mapped_column(String(PUBLIC_ID_MAX), unique=True)
    experience_cloud_org: Mapped[str | None] = mapped_column(String(PUBLIC_ID_MAX), index=True)
    #: off | optional | required: whether a registration's user key must be vouched for by
    #: HMAC-SHA256(secret, user_key) to link a profile (domain.user_keys; migration 0010).
    user_key_verification: Mapped[str] = mapped_column(String(16), default="off", server_default="off")
    user_key_secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # Fernet ciphertext, shown once
    platforms: Mapped[list[AppPlatform]] = relationship(
        back_populates="app", cascade="all, delete-orphan", order_by="AppPlatform.platform"
    )


class AppPlatform(Timestamps, Base):
    """One platform part of an app: its integration key, store identifier and provider credentials."""

    __tablename__ = "app_platform"
    __table_args__ = (UniqueConstraint("app_id", "platform"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("app.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(8))  # ios | android
    integration_key: Mapped[str] = mapped_column(String(PUBLIC_ID_MAX), unique=True)
    app_identifier: Mapped[str] = mapped_column(String(255), index=True)  # bundle id / package name
    credential_kind: Mapped[str | None] = mapped_column(String(32))
    credentials: Mapped[bytes | None] = mapped_column(LargeBinary)  # Fernet ciphertext, never returned
    apns_environment: Mapped[str | None] = mapped_column(String(16))
    app: Mapped[App] = relationship(back_populates="platforms")


class Profile(ExportedTimestamps, Base):
    """A recipient. Campaign is the source of truth: profiles come from the API or profile files."""

    __tablename__ = "profile"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    push_consent: Mapped[str] = mapped_column(String(1), default="u")  # y | n | u


class Subscription(Base):
    """A device's push registration for an app (Campaign's appSubscriptionRcp)."""

    __tablename__ = "subscription"
    __table_args__ = (
        UniqueConstraint("app_id", "token"),
        Index("ix_subscription_app_user_key", "app_id", "user_key"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("app.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(8))  # ios | android
    token: Mapped[str] = mapped_column(String(TOKEN_MAX))
    sdk: Mapped[str] = mapped_column(String(24))  # campaign-classic | campaign-standard | edge | native
    push_provider: Mapped[str] = mapped_column(String(16))  # fcm | apns | apnsSandbox
    user_key: Mapped[str | None] = mapped_column(String(255))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profile.id", ondelete="SET NULL"), index=True)
    ecid: Mapped[str | None] = mapped_column(String(64), index=True)
    device_imei: Mapped[str | None] = mapped_column(String(255))
    device_name: Mapped[str | None] = mapped_column(String(255))
    device_model: Mapped[str | None] = mapped_column(String(255))
    device_brand: Mapped[str | None] = mapped_column(String(255))
    device_manufacturer: Mapped[str | None] = mapped_column(String(255))
    os_name: Mapped[str | None] = mapped_column(String(64))
    os_version: Mapped[str | None] = mapped_column(String(64))
    os_language: Mapped[str | None] = mapped_column(String(64))
    additional_params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    profile: Mapped[Profile | None] = relationship(lazy="joined")


class StandardRegistration(Base):
    """A Campaign Standard ``mobileAppV5`` registration: which app an ECID belongs to.

    The Standard SDK sends the push token separately, to the ECID service (``/id``); a subscription
    exists once both halves are known.
    """

    __tablename__ = "standard_registration"
    __table_args__ = (UniqueConstraint("app_id", "ecid"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("app.id", ondelete="CASCADE"))
    ecid: Mapped[str] = mapped_column(String(64), index=True)
    push_platform: Mapped[str] = mapped_column(String(8))  # gcm | apns, as the SDK says
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PushIdentity(Base):
    """The push token an ECID reported to the ECID service (``/id``, data providers 20919 and
    20920) of one Experience Cloud org: each org's apps see only the tokens sent through it."""

    __tablename__ = "push_identity"
    org_id: Mapped[str] = mapped_column(String(PUBLIC_ID_MAX), primary_key=True)
    ecid: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(TOKEN_MAX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Delivery(Timestamps, Base):
    """A push campaign sent to a target; its messages are broadLog rows."""

    __tablename__ = "delivery"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("app.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    message: Mapped[dict[str, Any]] = mapped_column(JSONType)
    target: Mapped[dict[str, Any]] = mapped_column(JSONType)
    platforms: Mapped[list[str]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.SCHEDULED.value)
    schedule_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rate_per_second: Mapped[float | None]
    validity_seconds: Mapped[int | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)  # why a delivery failed as a whole
    #: Its pushes carry signed tracking ids, which tracking calls must then show (domain.tracking);
    #: false for deliveries made before signing existed (migration 0008), whose pushes are out there.
    signed_tracking: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())


class BroadLog(Base):
    """One message of a delivery to one subscription. ``id`` is the ``_mId`` sent in the push."""

    __tablename__ = "broadlog"
    # A worker claims the Pending rows of one delivery and one channel in id order: with channel
    # and id in the index that is a seek, where (delivery_id, status) alone made every iOS claim
    # of a delivery to both platforms step over the Android rows still Pending (5.1 s against
    # 1.2 s of claiming for the iOS half of a 100,000-subscription delivery).
    __table_args__ = (Index("ix_broadlog_claim", "delivery_id", "status", "channel", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id", ondelete="CASCADE"))
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscription.id", ondelete="SET NULL"), index=True)
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profile.id", ondelete="SET NULL"), index=True)
    channel: Mapped[int] = mapped_column(Integer)  # 41 iOS, 42 Android
    address: Mapped[str | None] = mapped_column(String(TOKEN_MAX))  # the token sent to
    status: Mapped[int] = mapped_column(Integer, default=6)  # Pending
    failure_type: Mapped[int | None] = mapped_column(Integer)
    failure_reason: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A worker holds a Pending row while it sends it; a lease still set after a restart means the
    # message was in flight at a crash, and sending it again is counted in resent_after_crash.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # retry back-off
    resent_after_crash: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event_date: Mapped[datetime] = mapped_column(UTCDateTime, default=ordered_now)  # commit-ordered: store.clock


class TrackingLog(Base):
    """One tracking call (receive, open, click, impression, button) for a broadLog message."""

    __tablename__ = "trackinglog"
    #: One receive and one open per message (migration 0007); clicks are limited in domain.tracking.
    __table_args__ = (
        Index(
            "uq_trackinglog_once",
            "broadlog_id",
            "interaction",
            unique=True,
            sqlite_where=text("interaction IN ('received', 'opened')"),
            postgresql_where=text("interaction IN ('received', 'opened')"),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    broadlog_id: Mapped[int] = mapped_column(ForeignKey("broadlog.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id", ondelete="CASCADE"), index=True)
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profile.id", ondelete="SET NULL"))
    interaction: Mapped[str] = mapped_column(String(16))  # received | opened | clicked | impression
    source: Mapped[str] = mapped_column(String(24))  # campaign-classic | campaign-standard | edge
    tag: Mapped[str | None] = mapped_column(String(32))  # Campaign tag or Edge event type, as received
    action_id: Mapped[str | None] = mapped_column(String(255))
    ecid: Mapped[str | None] = mapped_column(String(64))
    log_date: Mapped[datetime] = mapped_column(UTCDateTime, default=ordered_now)  # commit-ordered: store.clock


class Address(ExportedTimestamps, Base):
    """Quarantine state of one push token (Campaign's non-deliverable addresses)."""

    __tablename__ = "address"
    __table_args__ = (UniqueConstraint("app_id", "address"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("app.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(TOKEN_MAX))
    status: Mapped[str] = mapped_column(String(16), default="valid")  # valid|with_errors|quarantine|denylisted
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[int | None] = mapped_column(Integer)
    error_text: Mapped[str | None] = mapped_column(Text)
    first_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unregistered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # APNs 410 timestamp


class Audience(Timestamps, Base):
    """A set of profiles, one per Platform segment id (or built by hand)."""

    __tablename__ = "audience"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    segment_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    last_import_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AudienceMember(Base):
    """A profile's membership of an audience, with the Platform's segment status."""

    __tablename__ = "audience_member"
    audience_id: Mapped[int] = mapped_column(ForeignKey("audience.id", ondelete="CASCADE"), primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"), primary_key=True, index=True)
    status: Mapped[str] = mapped_column(String(16))  # realized | existing | exited
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The export (segment file group) that last named this member: a full export makes members
    # it did not name leave the audience.
    last_export: Mapped[str | None] = mapped_column(String(255))


class SyncRun(Base):
    """One run of a sync job (segments, profiles, logs, provision) and its summary."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_job_started", "job", "started_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(16))  # cli | api | schedule
    status: Mapped[str] = mapped_column(String(16), default="running")  # running|succeeded|failed|refused
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncState(Base):
    """A sync stream's watermark: where the next run starts."""

    __tablename__ = "sync_state"
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[str | None] = mapped_column(String(255))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SyncFile(Base):
    """The ledger of files a sync job has taken: one row per (source, name, ETag).

    A file is applied in the same transaction that writes its ledger row, so a row with status
    ``applied`` means the whole file took effect and a missing row means none of it did. ``failed``
    (validation) and ``blocked`` (governance) files changed nothing; a file re-uploaded with a new
    ETag is a new file.
    """

    __tablename__ = "sync_file"
    __table_args__ = (UniqueConstraint("source", "name", "etag"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(32))  # segments | profiles | data
    source: Mapped[str] = mapped_column(String(16))  # blob | sftp
    name: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_run.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # applied | failed | blocked
    reason: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AudienceImport(Base):
    """Which applied segment file changed which audience, and how."""

    __tablename__ = "audience_import"
    audience_id: Mapped[int] = mapped_column(ForeignKey("audience.id", ondelete="CASCADE"), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("sync_file.id", ondelete="CASCADE"), primary_key=True)
    entered: Mapped[int] = mapped_column(Integer, default=0)
    existing: Mapped[int] = mapped_column(Integer, default=0)
    exited: Mapped[int] = mapped_column(Integer, default=0)


class SyncReject(Base):
    """A row a sync run refused, with the reason (downloadable as CSV per run)."""

    __tablename__ = "sync_reject"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_run.id", ondelete="CASCADE"), index=True)
    file: Mapped[str] = mapped_column(String(1024))
    line: Mapped[int] = mapped_column(Integer)
    identity: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(255))


class PrivacyRequest(Base):
    """An erased person the Platform must forget too: ``sync logs`` sends a Privacy Service delete
    job for each row not sent yet (migration 0011).

    The identities are sealed like credentials (``{"external_id", "email"}`` through the app's
    SecretBox), so that after an erasure no column holds them in clear, and cleared once the
    Platform has taken the job; ``job_id`` stays as the record of it.
    """

    __tablename__ = "privacy_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    regulation: Mapped[str] = mapped_column(String(16), default="gdpr")
    identities: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    job_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)


class LookupTable(Timestamps, Base):
    """A personalisation table from a ``data_*`` file: templates read ``tables.<name>[key].<field>``."""

    __tablename__ = "lookup_table"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_column: Mapped[str] = mapped_column(String(255))
    columns: Mapped[list[str]] = mapped_column(JSONType, default=list)


class LookupRow(Base):
    """One row of a personalisation table, by key."""

    __tablename__ = "lookup_row"
    table_id: Mapped[int] = mapped_column(ForeignKey("lookup_table.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
