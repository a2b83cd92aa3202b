"""``privacy_request``: erased people the Platform must forget too, until a delete job is taken.

A row is pending while ``sent_at`` is NULL; its ``identities`` (sealed) are kept until then.
:func:`pending` reads them in id order, after a given id, a batch at a time; :func:`mark_sent`
records the Platform's job ids and clears the identities, :func:`mark_failed` keeps the rows for
the next run with the reason. The caller owns the transaction (one per answer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from store.models import PrivacyRequest

#: Characters of a failure kept in ``error``.
ERROR_CHARS = 2000


def pending(session: Session, after: int, limit: int) -> Sequence[Row[int, str, bytes | None]]:
    """Up to ``limit`` pending rows ``(id, regulation, identities)`` with an id above ``after``,
    in id order."""
    return session.execute(
        select(PrivacyRequest.id, PrivacyRequest.regulation, PrivacyRequest.identities)
        .where(PrivacyRequest.sent_at.is_(None), PrivacyRequest.id > after)
        .order_by(PrivacyRequest.id)
        .limit(limit)
    ).all()


def count_pending(session: Session) -> int:
    counted = select(func.count()).select_from(PrivacyRequest).where(PrivacyRequest.sent_at.is_(None))
    return int(session.scalar(counted) or 0)


def mark_sent(session: Session, jobs: Mapping[int, str], at: datetime) -> int:
    """Record the job id of each row of ``jobs`` (row id -> job id), with the time, and forget the
    row's identities; a row another run already recorded is left as it is. Returns the rows
    changed."""
    changed = 0
    for row_id, job_id in jobs.items():
        result = session.execute(
            update(PrivacyRequest)
            .where(PrivacyRequest.id == row_id, PrivacyRequest.sent_at.is_(None))
            .values(job_id=job_id[:255], sent_at=at, identities=None, error=None)
        )
        changed += int(result.rowcount)  # type: ignore[attr-defined]
    return changed


def mark_failed(session: Session, row_ids: Sequence[int], error: str) -> None:
    """Keep the rows pending, with ``error`` (which must not name anyone)."""
    if row_ids:
        session.execute(
            update(PrivacyRequest)
            .where(PrivacyRequest.id.in_(row_ids), PrivacyRequest.sent_at.is_(None))
            .values(error=error[:ERROR_CHARS])
        )
