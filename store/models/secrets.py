"""What the database keeps about the secret key it was written with (migration 0013)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base
from store.types import UTCDateTime, utcnow


class SecretCheck(Base):
    """A value sealed with a secret key (``core.secrets.SecretBox.check_value``), by the setting
    that holds the key: a key that cannot open it is not the one the database was written with."""

    __tablename__ = "secret_check"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # PUSHGATE_SECRET_KEY
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
