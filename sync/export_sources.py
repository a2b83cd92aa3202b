"""The four export streams on the store's side: which rows, in which order, after which watermark.

A stream's watermark (``sync_state.watermark`` of stream ``export:<name>``) is the position of the
last row the Platform took (or that was reported rejected); rows are read in the order of that
position, so everything before it is done and everything after it is not.

============  =====================================  ============================================
stream        rows                                   order and watermark
============  =====================================  ============================================
broadlog      final rows: Sent, Failed, Ignored,     ``(event_date, id)``; ``event_date`` is when
              Cancelled (never Pending)              the row reached its final status
trackinglog   every row (rows never change)          ``id``
quarantine    every address row (its current state)  ``(updated_at, id)``
preferences   every profile (its current consent)    ``(updated_at, id)``
============  =====================================  ============================================

Why ``event_date`` for broadLog: rows are created Pending and become final in any order, hours
apart for a slow or retried message. Ordering by id would either wait behind the oldest Pending
row or skip it; ordering by the time a row became final (the engine sets ``event_date`` with every
status change, and a final row never changes again) exports each final row once, whatever the
order, without a schema change. A row re-appears only if it changes after it was exported, which
final broadLog rows do not; quarantine and profile rows do, and each change is exported as a new
record (its own ``_id``).

Commit order: a row is only read once its timestamp is :data:`SETTLE` old, so that a transaction
that stamped a row and has not committed yet (a long analysis insert, a busy database) is not
overtaken by the watermark. trackingLog is read by id and stops at the first row younger than
that, for the same reason.

Cost: broadLog, address and profile have no index on their timestamp, so each run reads its
stream with one ordered query (one scan and sort, streamed); an index on ``broadlog(event_date,
id)`` would make that a range read on a large table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from store.codes import BroadLogStatus
from store.models import Address, BroadLog, Delivery, Profile, Subscription, TrackingLog
from sync.xdm import records
from sync.xdm.records import AddressRow, BroadLogRow, ProfileRow, TrackingRow

#: Rows stamped less than this long ago wait for the next run (see the module docstring).
SETTLE = timedelta(minutes=15)
FINAL = (
    int(BroadLogStatus.SENT),
    int(BroadLogStatus.FAILED),
    int(BroadLogStatus.IGNORED),
    int(BroadLogStatus.CANCELLED),
)


#: A query of any columns, and one of its rows.
Query = Select[*tuple[Any, ...]]
RawRow = Row[*tuple[Any, ...]]


def _time_key(moment: datetime, row_id: int) -> str:
    return f"{moment.isoformat()}|{row_id}"


def _parse_time_key(value: str) -> tuple[datetime, int]:
    moment, _, row_id = value.rpartition("|")
    return datetime.fromisoformat(moment), int(row_id)


class Source(Protocol):
    """One stream's reading side."""

    name: str

    def query(self, after: str | None, cutoff: datetime) -> Query: ...

    def count(self, after: str | None, cutoff: datetime) -> Query: ...

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]: ...

    def stop(self, row: Any, cutoff: datetime) -> bool: ...

    def key(self, row: Any) -> str: ...

    def record(self, row: Any, tenant_key: str, namespace: str) -> dict[str, Any]: ...


class BroadLogSource:
    name = "broadlog"

    def _where(self, after: str | None, cutoff: datetime) -> list[Any]:
        where: list[Any] = [BroadLog.status.in_(FINAL), BroadLog.event_date <= cutoff]
        if after:
            moment, row_id = _parse_time_key(after)
            where.append(or_(BroadLog.event_date > moment, and_(BroadLog.event_date == moment, BroadLog.id > row_id)))
        return where

    def query(self, after: str | None, cutoff: datetime) -> Query:
        return (
            select(
                BroadLog.id,
                BroadLog.delivery_id,
                Delivery.name,
                Delivery.app_id,
                BroadLog.subscription_id,
                Subscription.platform,
                Subscription.push_provider,
                Subscription.ecid,
                BroadLog.channel,
                BroadLog.status,
                BroadLog.failure_type,
                BroadLog.failure_reason,
                BroadLog.error_message,
                BroadLog.provider_message_id,
                BroadLog.attempts,
                BroadLog.resent_after_crash,
                BroadLog.created_at,
                BroadLog.event_date,
                Profile.external_id,
            )
            .select_from(BroadLog)
            .join(Delivery, Delivery.id == BroadLog.delivery_id)
            .outerjoin(Subscription, Subscription.id == BroadLog.subscription_id)
            .outerjoin(Profile, Profile.id == BroadLog.profile_id)
            .where(*self._where(after, cutoff))
            .order_by(BroadLog.event_date, BroadLog.id)
        )

    def count(self, after: str | None, cutoff: datetime) -> Query:
        return select(func.count()).select_from(BroadLog).where(*self._where(after, cutoff))

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]:
        return [BroadLogRow._make(r) for r in raw]

    def stop(self, row: Any, cutoff: datetime) -> bool:
        return False

    def key(self, row: Any) -> str:
        return _time_key(row.event_date, row.id)

    def record(self, row: Any, tenant_key: str, namespace: str) -> dict[str, Any]:
        return records.broadlog(row, tenant_key, namespace)


class TrackingSource:
    name = "trackinglog"

    def _where(self, after: str | None) -> list[Any]:
        return [TrackingLog.id > int(after)] if after else []

    def query(self, after: str | None, cutoff: datetime) -> Query:
        return (
            select(
                TrackingLog.id,
                TrackingLog.broadlog_id,
                TrackingLog.delivery_id,
                Delivery.name,
                Delivery.app_id,
                TrackingLog.interaction,
                TrackingLog.source,
                TrackingLog.tag,
                TrackingLog.action_id,
                TrackingLog.ecid,
                TrackingLog.log_date,
                Profile.external_id,
                Subscription.platform,
                Subscription.push_provider,
                Subscription.ecid,
                BroadLog.provider_message_id,
                BroadLog.channel,
            )
            .select_from(TrackingLog)
            .join(Delivery, Delivery.id == TrackingLog.delivery_id)
            .outerjoin(BroadLog, BroadLog.id == TrackingLog.broadlog_id)
            .outerjoin(Subscription, Subscription.id == BroadLog.subscription_id)
            .outerjoin(Profile, Profile.id == TrackingLog.profile_id)
            .where(*self._where(after))
            .order_by(TrackingLog.id)
        )

    def count(self, after: str | None, cutoff: datetime) -> Query:
        where = [*self._where(after), TrackingLog.log_date <= cutoff]
        return select(func.count()).select_from(TrackingLog).where(*where)

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]:
        return [TrackingRow._make(r) for r in raw]

    def stop(self, row: Any, cutoff: datetime) -> bool:
        return bool(row.log_date > cutoff)

    def key(self, row: Any) -> str:
        return str(row.id)

    def record(self, row: Any, tenant_key: str, namespace: str) -> dict[str, Any]:
        return records.trackinglog(row, tenant_key, namespace)


class AddressSource:
    name = "quarantine"

    def _where(self, after: str | None, cutoff: datetime) -> list[Any]:
        where: list[Any] = [Address.updated_at <= cutoff]
        if after:
            moment, row_id = _parse_time_key(after)
            where.append(or_(Address.updated_at > moment, and_(Address.updated_at == moment, Address.id > row_id)))
        return where

    def query(self, after: str | None, cutoff: datetime) -> Query:
        return (
            select(
                Address.id,
                Address.app_id,
                Address.platform,
                Address.address,
                Address.status,
                Address.error_count,
                Address.failure_reason,
                Address.error_text,
                Address.first_error_at,
                Address.last_error_at,
                Address.unregistered_at,
                Address.updated_at,
                Profile.external_id,
                Subscription.ecid,
            )
            .select_from(Address)
            .outerjoin(Subscription, and_(Subscription.app_id == Address.app_id, Subscription.token == Address.address))
            .outerjoin(Profile, Profile.id == Subscription.profile_id)
            .where(*self._where(after, cutoff))
            .order_by(Address.updated_at, Address.id)
        )

    def count(self, after: str | None, cutoff: datetime) -> Query:
        return select(func.count()).select_from(Address).where(*self._where(after, cutoff))

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]:
        return [AddressRow._make(r) for r in raw]

    def stop(self, row: Any, cutoff: datetime) -> bool:
        return False

    def key(self, row: Any) -> str:
        return _time_key(row.updated_at, row.id)

    def record(self, row: Any, tenant_key: str, namespace: str) -> dict[str, Any]:
        return records.quarantine(row, tenant_key, namespace)


class ProfileSource:
    name = "preferences"

    def _where(self, after: str | None, cutoff: datetime) -> list[Any]:
        where: list[Any] = [Profile.updated_at <= cutoff]
        if after:
            moment, row_id = _parse_time_key(after)
            where.append(or_(Profile.updated_at > moment, and_(Profile.updated_at == moment, Profile.id > row_id)))
        return where

    def query(self, after: str | None, cutoff: datetime) -> Query:
        return (
            select(Profile.id, Profile.external_id, Profile.push_consent, Profile.updated_at)
            .where(*self._where(after, cutoff))
            .order_by(Profile.updated_at, Profile.id)
        )

    def count(self, after: str | None, cutoff: datetime) -> Query:
        return select(func.count()).select_from(Profile).where(*self._where(after, cutoff))

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]:
        """Profile rows with the ECIDs of their enabled subscriptions, newest registration first."""
        ids = [r[0] for r in raw]
        ecids: dict[int, list[str]] = {}
        if ids:
            found = session.execute(
                select(Subscription.profile_id, Subscription.ecid)
                .where(
                    Subscription.profile_id.in_(ids), Subscription.ecid.is_not(None), Subscription.disabled.is_(False)
                )
                .order_by(Subscription.profile_id, Subscription.last_registered_at.desc())
            )
            for profile_id, ecid in found:
                if profile_id is not None and ecid:
                    ecids.setdefault(profile_id, []).append(ecid)
        return [ProfileRow(r[0], r[1], r[2], r[3], tuple(ecids.get(r[0], ()))) for r in raw]

    def stop(self, row: Any, cutoff: datetime) -> bool:
        return False

    def key(self, row: Any) -> str:
        return _time_key(row.updated_at, row.id)

    def record(self, row: Any, tenant_key: str, namespace: str) -> dict[str, Any]:
        return records.preferences(row, tenant_key, namespace)


SOURCES: dict[str, Source] = {
    "broadlog": BroadLogSource(),
    "trackinglog": TrackingSource(),
    "quarantine": AddressSource(),
    "preferences": ProfileSource(),
}
