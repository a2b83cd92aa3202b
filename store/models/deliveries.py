"""Deliveries and their messages: broadLog, trackingLog, and the quarantine of addresses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.clock import ordered_now
from store.codes import DeliveryStatus
from store.models.base import TOKEN_MAX, Base, ExportedTimestamps, Timestamps
from store.types import JSONType, UTCDateTime, utcnow


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
    #: Why a delivery failed as a whole; while it runs, what keeps a platform's messages from going
    #: out (written from its DeliveryStall rows by domain.delivery_status); once completed, why a
    #: platform's messages failed.
    error: Mapped[str | None] = mapped_column(Text)
    #: Its pushes carry signed tracking ids, which tracking calls must then show (domain.tracking);
    #: false for deliveries made before signing existed (migration 0008), whose pushes are out there.
    signed_tracking: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())
    #: Who asked for it and who cancelled it: a console user's e-mail or "API key <name>".
    created_by: Mapped[str | None] = mapped_column(String(255))
    cancelled_by: Mapped[str | None] = mapped_column(String(255))
    #: A proof: sent at once to test devices from the console, kept apart from the campaigns.
    proof: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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


class DeliveryStall(Base):
    """A platform of a running delivery whose messages cannot go out: the last batch of it was
    refused for the app's credentials (missing, undecryptable, or refused by APNs / FCM / the OAuth
    token endpoint). Written and cleared by the engine (migration 0013); the delivery's ``error``
    says the same in words, and ``/readyz`` reports the gateway degraded while one exists."""

    __tablename__ = "delivery_stall"
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id", ondelete="CASCADE"), primary_key=True)
    platform: Mapped[str] = mapped_column(String(8), primary_key=True)  # ios | android
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)  # last refused


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
