"""API keys and apps (Campaign's push services) with their iOS and Android parts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models.base import PUBLIC_ID_MAX, Base, Timestamps
from store.types import UTCDateTime, utcnow


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
