"""The console's people and the devices marketers send proofs to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, Timestamps
from store.types import UTCDateTime


class ConsoleUser(Timestamps, Base):
    """Someone who signs in to the console: an e-mail, an argon2 hash and a role (as API keys')."""

    __tablename__ = "console_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TestDevice(Base):
    """A subscription of an app that marketers send proofs to (Campaign's seed addresses)."""

    __tablename__ = "test_device"
    __table_args__ = (UniqueConstraint("app_id", "subscription_id"),)
    __test__ = False  # not a pytest test class, whatever its name
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("app.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscription.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
