"""Deliveries as the worker reads them: which are active, and what one batch loop needs.

:func:`by_status` runs on every worker tick in every serving process, idle or not, so it is one
Core query on a plain connection (an ORM session cost twice the CPU). :func:`clear_stalls` runs
for every batch that sent something, so it goes straight to the driver.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from store.codes import DeliveryStatus
from store.db import placeholder
from store.models import AppPlatform, Delivery


def by_status(connection: Connection, statuses: Iterable[DeliveryStatus]) -> list[tuple[int, str]]:
    """``(id, status)`` of every delivery in one of ``statuses``, in id order."""
    rows = connection.execute(
        select(Delivery.id, Delivery.status).where(Delivery.status.in_(list(statuses))).order_by(Delivery.id)
    )
    return [(delivery_id, status) for delivery_id, status in rows]


def scheduled(session: Session) -> list[Delivery]:
    """Every scheduled delivery, oldest first (whether each is due is the caller's rule)."""
    return list(
        session.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.SCHEDULED).order_by(Delivery.id))
    )


def pacing(connection: Connection, delivery_id: int) -> tuple[float | None, list[str]]:
    """The delivery's ``rate_per_second`` (None: as fast as possible) and platforms."""
    rate, platforms = connection.execute(
        select(Delivery.rate_per_second, Delivery.platforms).where(Delivery.id == delivery_id)
    ).one()
    return rate, list(platforms or [])


def with_parts(session: Session, delivery_id: int) -> tuple[Delivery, dict[str, AppPlatform]] | None:
    """The delivery and its app's platform parts by platform (``ios``, ``android``); None when the
    delivery is gone."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        return None
    parts = {p.platform: p for p in session.scalars(select(AppPlatform).where(AppPlatform.app_id == delivery.app_id))}
    return delivery, parts


#: {p} is the driver's placeholder; {platforms} one placeholder per platform.
_CLEAR_STALLS_SQL = (
    "DELETE FROM delivery_stall WHERE delivery_id = {p} AND platform IN ({platforms}) RETURNING platform"
)


def clear_stalls(connection: Connection, delivery_id: int, platforms: list[str]) -> list[str]:
    """Forget the stalls (``delivery_stall`` rows, see :mod:`domain.delivery_status`) of the
    delivery's ``platforms``, a message of each having gone out; returns the platforms that were
    stalled. Usually it deletes nothing: sent to the driver, that costs ~50 us a batch on SQLite,
    against ~330 us as an ORM delete."""
    p = placeholder(connection.dialect)
    sql = _CLEAR_STALLS_SQL.format(p=p, platforms=", ".join([p] * len(platforms)))
    return sorted(connection.exec_driver_sql(sql, (delivery_id, *platforms)).scalars())
