"""What the Platform export reads from the store: the four streams' rows, in which order, after
which watermark. The XDM record each row becomes is :mod:`sync.xdm.records`' business.

A stream's watermark (``sync_state.watermark`` of stream ``export:<name>``) is the position of the
last row the Platform took (or that was reported rejected); rows are read in the order of that
position, so everything before it is done and everything after it is not.

============  =====================================  ============================================
stream        rows                                   order and watermark
============  =====================================  ============================================
broadlog      final rows: Sent, Failed, Ignored,     ``(event_date, id)``; ``event_date`` is when
              Cancelled (never Pending)              the row reached its final status
trackinglog   every row (rows never change)          ``(log_date, id)``
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

Commit order: every one of these timestamps is taken with :func:`store.clock.stamp` (or the
models' :func:`store.clock.ordered_now` default), and a run reads only rows stamped before
:func:`store.clock.horizon`: on SQLite that is now (writers are serialised and stamp under the
write lock, so a row still to come can never be older than one already read); on PostgreSQL it
is the start of the oldest open transaction. ``PUSHGATE_SYNC_EXPORT_SETTLE_SECONDS`` adds a
margin. trackingLog used to be read by id; ids come from a sequence on PostgreSQL, which is not
commit order, so it is read by time like the others (migration 0004 converted its watermark).

Cost: broadLog, trackingLog, address and profile have no index on their timestamp, so each run
reads its stream with one ordered query (one scan and sort, streamed); an index on
``broadlog(event_date, id)`` would make that a range read on a large table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from store.codes import BroadLogStatus
from store.models import Address, BroadLog, Delivery, Profile, Subscription, TrackingLog


#: The rows each stream reads, one field per selected column (see :func:`select_list`).
class BroadLogRow(NamedTuple):
    id: int
    delivery_id: int
    delivery_name: str | None
    app_id: int | None
    subscription_id: int | None
    platform: str | None
    push_provider: str | None
    ecid: str | None
    channel: int
    status: int
    failure_type: int | None
    failure_reason: int | None
    error_message: str | None
    provider_message_id: str | None
    attempts: int
    resent_after_crash: bool
    created_at: datetime
    event_date: datetime
    external_id: str | None


class TrackingRow(NamedTuple):
    id: int
    broadlog_id: int
    delivery_id: int
    delivery_name: str | None
    app_id: int | None
    interaction: str
    source: str
    tag: str | None
    action_id: str | None
    ecid: str | None
    log_date: datetime
    external_id: str | None
    platform: str | None
    push_provider: str | None
    subscription_ecid: str | None
    provider_message_id: str | None
    channel: int | None


class AddressRow(NamedTuple):
    id: int
    app_id: int
    platform: str
    address: str
    status: str
    error_count: int
    failure_reason: int | None
    error_text: str | None
    first_error_at: datetime | None
    last_error_at: datetime | None
    unregistered_at: datetime | None
    updated_at: datetime
    external_id: str | None
    ecid: str | None


class ProfileRow(NamedTuple):
    id: int
    external_id: str
    push_consent: str
    updated_at: datetime
    ecids: tuple[str, ...]


FINAL = (
    int(BroadLogStatus.SENT),
    int(BroadLogStatus.FAILED),
    int(BroadLogStatus.IGNORED),
    int(BroadLogStatus.CANCELLED),
)


#: A query of any columns, and one of its rows.
Query = Select[*tuple[Any, ...]]
RawRow = Row[*tuple[Any, ...]]


def time_key(moment: datetime, row_id: int) -> str:
    """The watermark of a row: its timestamp and id."""
    return f"{moment.isoformat()}|{row_id}"


def parse_time_key(value: str) -> tuple[datetime, int]:
    moment, _, row_id = value.rpartition("|")
    return datetime.fromisoformat(moment), int(row_id)


def select_list(
    row_type: type[tuple[Any, ...]], columns: dict[str, Any], *, computed: tuple[str, ...] = ()
) -> list[Any]:
    """The columns to select for ``row_type`` (a NamedTuple), each labelled with its field's name
    and in the order of its fields, so ``row_type._make(row)`` maps by name: reordering either side
    changes nothing, and a field without a column (or a column without a field) fails at import.
    ``computed`` names fields the table fills in itself, after the query."""
    fields: tuple[str, ...] = row_type._fields  # type: ignore[attr-defined]
    wanted = [name for name in fields if name not in computed]
    if set(columns) != set(wanted):
        raise TypeError(f"{row_type.__name__}: columns {sorted(columns)} do not match fields {wanted}")
    return [columns[name].label(name) for name in wanted]


class StreamReader(Protocol):
    """One stream's reading side: rows stamped before ``cutoff`` and after the watermark ``after``."""

    name: str

    def query(self, after: str | None, cutoff: datetime) -> Query: ...

    def count(self, after: str | None, cutoff: datetime) -> Query: ...

    def waiting(self, after: str | None, cutoff: datetime) -> Query: ...

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]: ...

    def key(self, row: Any) -> str: ...


class TimeOrdered:
    """A stream read in ``(stamp, id)`` order: the conditions, counts and watermark all share."""

    def __init__(self, name: str, stamp: InstrumentedAttribute[datetime], row_id: InstrumentedAttribute[int]) -> None:
        self.name, self.stamp, self.id = name, stamp, row_id

    def scope(self) -> list[ColumnElement[bool]]:
        """Conditions on the stream's table besides time (none by default)."""
        return []

    def _after(self, after: str | None) -> list[ColumnElement[bool]]:
        if not after:
            return []
        moment, row_id = parse_time_key(after)
        return [or_(self.stamp > moment, and_(self.stamp == moment, self.id > row_id))]

    def where(self, after: str | None, cutoff: datetime) -> list[ColumnElement[bool]]:
        return [*self.scope(), *self._after(after), self.stamp < cutoff]

    def count(self, after: str | None, cutoff: datetime) -> Query:
        return select(func.count()).select_from(self.stamp.class_).where(*self.where(after, cutoff))

    def waiting(self, after: str | None, cutoff: datetime) -> Query:
        """How many rows after the watermark are stamped at or after ``cutoff``, and the newest stamp."""
        return (
            select(func.count(), func.max(self.stamp))
            .select_from(self.stamp.class_)
            .where(*self.scope(), *self._after(after), self.stamp >= cutoff)
        )

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]:
        return list(raw)

    def key(self, row: Any) -> str:
        return time_key(getattr(row, self.stamp.key), row.id)


_BROADLOG = select_list(
    BroadLogRow,
    {
        "id": BroadLog.id,
        "delivery_id": BroadLog.delivery_id,
        "delivery_name": Delivery.name,
        "app_id": Delivery.app_id,
        "subscription_id": BroadLog.subscription_id,
        "platform": Subscription.platform,
        "push_provider": Subscription.push_provider,
        "ecid": Subscription.ecid,
        "channel": BroadLog.channel,
        "status": BroadLog.status,
        "failure_type": BroadLog.failure_type,
        "failure_reason": BroadLog.failure_reason,
        "error_message": BroadLog.error_message,
        "provider_message_id": BroadLog.provider_message_id,
        "attempts": BroadLog.attempts,
        "resent_after_crash": BroadLog.resent_after_crash,
        "created_at": BroadLog.created_at,
        "event_date": BroadLog.event_date,
        "external_id": Profile.external_id,
    },
)
_TRACKING = select_list(
    TrackingRow,
    {
        "id": TrackingLog.id,
        "broadlog_id": TrackingLog.broadlog_id,
        "delivery_id": TrackingLog.delivery_id,
        "delivery_name": Delivery.name,
        "app_id": Delivery.app_id,
        "interaction": TrackingLog.interaction,
        "source": TrackingLog.source,
        "tag": TrackingLog.tag,
        "action_id": TrackingLog.action_id,
        "ecid": TrackingLog.ecid,
        "log_date": TrackingLog.log_date,
        "external_id": Profile.external_id,
        "platform": Subscription.platform,
        "push_provider": Subscription.push_provider,
        "subscription_ecid": Subscription.ecid,
        "provider_message_id": BroadLog.provider_message_id,
        "channel": BroadLog.channel,
    },
)
_ADDRESS = select_list(
    AddressRow,
    {
        "id": Address.id,
        "app_id": Address.app_id,
        "platform": Address.platform,
        "address": Address.address,
        "status": Address.status,
        "error_count": Address.error_count,
        "failure_reason": Address.failure_reason,
        "error_text": Address.error_text,
        "first_error_at": Address.first_error_at,
        "last_error_at": Address.last_error_at,
        "unregistered_at": Address.unregistered_at,
        "updated_at": Address.updated_at,
        "external_id": Profile.external_id,
        "ecid": Subscription.ecid,
    },
)
_PROFILE = select_list(
    ProfileRow,
    {
        "id": Profile.id,
        "external_id": Profile.external_id,
        "push_consent": Profile.push_consent,
        "updated_at": Profile.updated_at,
    },
    computed=("ecids",),
)


class BroadLogTable(TimeOrdered):
    def __init__(self) -> None:
        super().__init__("broadlog", BroadLog.event_date, BroadLog.id)

    def scope(self) -> list[ColumnElement[bool]]:
        return [BroadLog.status.in_(FINAL)]

    def query(self, after: str | None, cutoff: datetime) -> Query:
        return (
            select(*_BROADLOG)
            .select_from(BroadLog)
            .join(Delivery, Delivery.id == BroadLog.delivery_id)
            .outerjoin(Subscription, Subscription.id == BroadLog.subscription_id)
            .outerjoin(Profile, Profile.id == BroadLog.profile_id)
            .where(*self.where(after, cutoff))
            .order_by(BroadLog.event_date, BroadLog.id)
        )

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]:
        return [BroadLogRow._make(r) for r in raw]


class TrackingTable(TimeOrdered):
    def __init__(self) -> None:
        super().__init__("trackinglog", TrackingLog.log_date, TrackingLog.id)

    def query(self, after: str | None, cutoff: datetime) -> Query:
        return (
            select(*_TRACKING)
            .select_from(TrackingLog)
            .join(Delivery, Delivery.id == TrackingLog.delivery_id)
            .outerjoin(BroadLog, BroadLog.id == TrackingLog.broadlog_id)
            .outerjoin(Subscription, Subscription.id == BroadLog.subscription_id)
            .outerjoin(Profile, Profile.id == TrackingLog.profile_id)
            .where(*self.where(after, cutoff))
            .order_by(TrackingLog.log_date, TrackingLog.id)
        )

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]:
        return [TrackingRow._make(r) for r in raw]


class AddressTable(TimeOrdered):
    def __init__(self) -> None:
        super().__init__("quarantine", Address.updated_at, Address.id)

    def query(self, after: str | None, cutoff: datetime) -> Query:
        return (
            select(*_ADDRESS)
            .select_from(Address)
            .outerjoin(Subscription, and_(Subscription.app_id == Address.app_id, Subscription.token == Address.address))
            .outerjoin(Profile, Profile.id == Subscription.profile_id)
            .where(*self.where(after, cutoff))
            .order_by(Address.updated_at, Address.id)
        )

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]:
        return [AddressRow._make(r) for r in raw]


class ProfileTable(TimeOrdered):
    def __init__(self) -> None:
        super().__init__("preferences", Profile.updated_at, Profile.id)

    def query(self, after: str | None, cutoff: datetime) -> Query:
        return select(*_PROFILE).where(*self.where(after, cutoff)).order_by(Profile.updated_at, Profile.id)

    def rows(self, session: Session, raw: Sequence[RawRow]) -> list[Any]:
        """Profile rows with the ECIDs of their enabled subscriptions, newest registration first."""
        ids = [r.id for r in raw]
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
        return [ProfileRow._make((*r, tuple(ecids.get(r.id, ())))) for r in raw]


READERS: dict[str, StreamReader] = {
    "broadlog": BroadLogTable(),
    "trackinglog": TrackingTable(),
    "quarantine": AddressTable(),
    "preferences": ProfileTable(),
}
