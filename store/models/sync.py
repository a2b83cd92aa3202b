"""What the sync jobs keep: runs, named state, the file ledger, audience imports, rejects, the
Privacy Service queue, personalisation tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, Timestamps
from store.types import JSONType, UTCDateTime, utcnow


class SyncRun(Base):
    """One run of a sync job (segments, profiles, logs, provision) and its summary."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_job_started", "job", "started_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(16))  # cli | api | schedule | console
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
