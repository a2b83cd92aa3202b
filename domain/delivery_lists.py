"""Pages of deliveries for people to read: newest first, campaigns apart from proofs, with the
counts of every delivery of a page read in a few set-based queries.

:func:`recent` filters as :func:`domain.deliveries.list_query` does (the API's list) and adds what
a console list needs: proofs left out unless asked for, and keyset paging from the newest. The
counts are those of :func:`domain.deliveries.counts`, for many deliveries at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.deliveries import list_query
from domain.paging import keyset, split_page
from store.codes import BroadLogStatus
from store.models import Audience, BroadLog, Delivery, TrackingLog

PAGE_SIZE = 25


@dataclass(frozen=True)
class Page:
    deliveries: list[Delivery]
    #: The id the next (older) page starts before; None on the last page.
    next_before: int | None


def recent(
    session: Session,
    *,
    app_id: int | None = None,
    status: str | None = None,
    proofs: bool = False,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> Page:
    """Deliveries newest first, of one app and in one status when given, proofs only with
    ``proofs``, those with an id below ``before`` when given (the next page)."""
    stmt = list_query(app_id=app_id, status=status)
    if not proofs:
        stmt = stmt.where(Delivery.proof.is_(False))
    found = session.scalars(keyset(stmt, Delivery.id, after=before, limit=limit, descending=True)).all()
    return Page(*split_page(found, limit, lambda d: d.id))


_BY_STATUS = {
    "pending": BroadLogStatus.PENDING,
    "sent": BroadLogStatus.SENT,
    "failed": BroadLogStatus.FAILED,
    "ignored": BroadLogStatus.IGNORED,
    "cancelled": BroadLogStatus.CANCELLED,
}


def counts_of(session: Session, delivery_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """:func:`domain.deliveries.counts` of each delivery (without ``resent_after_crash``), in two
    grouped queries whatever their number."""
    ids = sorted(set(delivery_ids))
    result: dict[int, dict[str, Any]] = {
        i: {"targeted": 0, **dict.fromkeys(_BY_STATUS, 0), "received": 0, "opened": 0, "clicked": 0} for i in ids
    }
    if not ids:
        return result
    statuses = {int(code): name for name, code in _BY_STATUS.items()}
    for delivery_id, status, count in session.execute(
        select(BroadLog.delivery_id, BroadLog.status, func.count())
        .where(BroadLog.delivery_id.in_(ids))
        .group_by(BroadLog.delivery_id, BroadLog.status)
    ):
        result[delivery_id]["targeted"] += int(count)
        if status in statuses:
            result[delivery_id][statuses[status]] = int(count)
    for delivery_id, interaction, count in session.execute(
        select(TrackingLog.delivery_id, TrackingLog.interaction, func.count(func.distinct(TrackingLog.broadlog_id)))
        .where(TrackingLog.delivery_id.in_(ids), TrackingLog.interaction.in_(("received", "opened", "clicked")))
        .group_by(TrackingLog.delivery_id, TrackingLog.interaction)
    ):
        result[delivery_id][interaction] = int(count)
    return result


def audience_names(session: Session, audience_ids: Sequence[int]) -> dict[int, str]:
    """The names of the audiences with these ids (unknown ids are left out)."""
    ids = sorted(set(audience_ids))
    if not ids:
        return {}
    return {i: name for i, name in session.execute(select(Audience.id, Audience.name).where(Audience.id.in_(ids)))}
