"""The declarative base, its naming convention, shared timestamp columns and column sizes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    MetaData,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.clock import ordered_now
from store.types import UTCDateTime, utcnow

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
