"""The sync jobs' file ledger (``sync_file``): which remote files a job took, and what came of them.

A file is named by ``(source, name, etag)``, so one re-uploaded with a new ETag is a new file. A
job writes the ``applied`` row in the transaction that applies the file (:func:`take`, then
:func:`set_counts`): a second process taking the same file fails on the unique constraint before
doing the work. ``failed`` and ``blocked`` rows record a file that changed nothing
(:func:`record_refused`); a retry deletes them first (:func:`forget`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import SyncFile
from store.types import utcnow

#: A file of a source: its name and ETag.
FileKey = tuple[str, str]
#: The statuses of a file that changed nothing, which a retry may replace.
REFUSED = ("failed", "blocked")


class AlreadyTaken(Exception):
    """Another run holds a ledger row for one of the files."""


def statuses(session: Session, source: str) -> dict[FileKey, str]:
    """Every file of ``source`` in the ledger, with its status."""
    rows = session.execute(select(SyncFile.name, SyncFile.etag, SyncFile.status).where(SyncFile.source == source))
    return {(name, etag): status for name, etag, status in rows}


def find(session: Session, source: str, name: str, etag: str) -> SyncFile | None:
    return session.scalar(
        select(SyncFile).where(SyncFile.source == source, SyncFile.name == name, SyncFile.etag == etag)
    )


def forget(session: Session, source: str, files: Sequence[FileKey], *, only_refused: bool = False) -> None:
    """Delete the ledger rows of ``files`` (with ``only_refused``, only failed or blocked ones)."""
    if not files:
        return
    condition = [SyncFile.source == source, tuple_(SyncFile.name, SyncFile.etag).in_(list(files))]
    if only_refused:
        condition.append(SyncFile.status.in_(REFUSED))
    session.execute(delete(SyncFile).where(*condition))


def take(
    session: Session, *, job: str, source: str, run_id: int, files: Sequence[FileKey], details: dict[str, Any]
) -> list[int]:
    """Write an ``applied`` row per file (counts to come from :func:`set_counts`), in the caller's
    transaction; returns their ids in the order of ``files``. Raises :class:`AlreadyTaken` when
    any file has a row already, or another process wrote one first (the session must then be
    rolled back)."""
    keys = tuple_(SyncFile.name, SyncFile.etag)
    if session.scalar(select(SyncFile.id).where(SyncFile.source == source, keys.in_(list(files))).limit(1)):
        raise AlreadyTaken
    now = utcnow()
    values = [
        {
            "job": job,
            "source": source,
            "name": name,
            "etag": etag,
            "run_id": run_id,
            "status": "applied",
            "rows": 0,
            "applied": 0,
            "rejected": 0,
            "details": details,
            "taken_at": now,
        }
        for name, etag in files
    ]
    try:
        rows = session.execute(insert(SyncFile).returning(SyncFile.id), values).all()
    except IntegrityError:  # another process wrote the same (name, ETag) first
        raise AlreadyTaken from None
    return [int(row[0]) for row in rows]


def set_counts(
    session: Session, file_id: int, *, rows: int, applied: int, rejected: int, details: dict[str, Any]
) -> None:
    """The counts of an applied file, in the transaction that applied it."""
    session.execute(
        update(SyncFile)
        .where(SyncFile.id == file_id)
        .values(rows=rows, applied=applied, rejected=rejected, details=details)
    )


def record_refused(
    session: Session,
    *,
    job: str,
    source: str,
    name: str,
    etag: str,
    run_id: int,
    status: str,
    reason: str,
    rows: int,
    details: dict[str, Any],
) -> None:
    """Record that the file changed nothing (``status`` failed or blocked), replacing an earlier
    row of the same file. Raises IntegrityError when another run recorded it at the same time."""
    known = find(session, source, name, etag)
    if known is None:
        known = SyncFile(job=job, source=source, name=name, etag=etag)
        session.add(known)
    known.run_id, known.status, known.reason, known.taken_at = run_id, status, reason, utcnow()
    known.rows, known.applied, known.rejected, known.details = rows, 0, 0, details
    session.flush()
