"""Profiles (Campaign's recipients), their devices' subscriptions, Campaign Standard's identity
halves, and audiences."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models.base import PUBLIC_ID_MAX, TOKEN_MAX, Base, ExportedTimestamps, Timestamps
from store.types import JSONType, UTCDateTime, utcnow


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
