"""broadLog on the send path: claim a batch (:func:`claim`), load what building its pushes reads
(:func:`load`), record outcomes (:func:`mark_sent`, :func:`mark_failed`, :func:`retry_later`), and
what the worker asks between batches (:func:`any_pending`, :func:`next_due`, :func:`pending_count`).

:func:`claim`, :func:`load` and :func:`mark_sent` run for every batch, and through SQLAlchemy's
statement rendering and per-row parameter processing each cost more CPU than the send it serves
(bench/send_profile.py): so fixed SQL with the driver's own placeholders
(:func:`store.db.placeholder`), timestamps and JSON converted with the column types' own
processors. tests/push/test_engine.py checks what :func:`load` returns against the models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select, update

from store.codes import BroadLogStatus, DeliveryStatus, FailureReason, FailureType
from store.db import placeholder
from store.models import BroadLog, Delivery, Profile, Subscription

_BROADLOG = cast(Table, BroadLog.__table__)


@dataclass(slots=True)
class LoadedSubscription:
    """The subscription columns a push reads (``domain.templates.rendering.SubscriptionLike`` plus the token)."""

    token: str
    additional_params: dict[str, Any]
    platform: str
    sdk: str
    push_provider: str
    user_key: str | None
    device_name: str | None
    device_model: str | None
    device_brand: str | None
    device_manufacturer: str | None
    os_name: str | None
    os_version: str | None
    os_language: str | None


@dataclass(slots=True)
class LoadedProfile:
    """The profile columns a template reads (``domain.templates.rendering.ProfileLike``)."""

    attributes: dict[str, Any]
    external_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    locale: str | None
    timezone: str | None


#: Every Sent row of a batch in one executemany, straight to the driver: through SQLAlchemy's
#: per-row parameter processing it cost ~14 us a row against ~5 us, on the path every message
#: takes. {p} is the driver's placeholder.
_MARK_SENT_SQL = (
    "UPDATE broadlog SET status = {status}, provider_message_id = {p}, lease_until = NULL, failure_type = NULL, "
    "failure_reason = NULL, error_message = NULL, event_date = {p} WHERE id = {p}"
)


def mark_sent(connection: Connection, sent: list[tuple[str | None, int]], now: datetime) -> None:
    """Mark ``(provider message id, broadLog id)`` rows Sent at ``now``."""
    sql = _MARK_SENT_SQL.format(status=int(BroadLogStatus.SENT), p=placeholder(connection.dialect))
    stamp = _stamp(connection, now)
    connection.exec_driver_sql(sql, [(message_id, stamp, key) for message_id, key in sent])


_SUBSCRIPTION_COLUMNS = [f.name for f in fields(LoadedSubscription)]
_PROFILE_COLUMNS = [f.name for f in fields(LoadedProfile)]

#: The claim: lease the first ``limit`` sendable Pending rows (in id order) and count a row whose
#: earlier lease had lapsed (its worker died mid-send) as resent after a crash. {p} is the
#: driver's placeholder; {channel} is empty or a channel condition; {lock} is PostgreSQL's
#: ``FOR UPDATE SKIP LOCKED``, so concurrent workers take disjoint rows instead of waiting.
_CLAIM_SQL = (
    "UPDATE broadlog SET lease_until = {p}, attempts = attempts + 1, "
    "resent_after_crash = (resent_after_crash OR lease_until IS NOT NULL) "
    "WHERE id IN (SELECT id FROM broadlog WHERE delivery_id = {p} AND status = {pending} "
    "AND next_attempt_at <= {p} AND (lease_until IS NULL OR lease_until < {p}){channel} "
    "ORDER BY id LIMIT {p}{lock}) RETURNING id"
)
#: Per claimed row: broadLog id and attempts, the subscription's columns, then the profile's id
#: (NULL for an unlinked subscription) and columns, in the order of the Loaded* fields. {ids} is
#: one placeholder per id.
_LOAD_COLUMNS = ", ".join(
    ["broadlog.id", "broadlog.attempts"]
    + [f"subscription.{name}" for name in _SUBSCRIPTION_COLUMNS]
    + ["profile.id"]
    + [f"profile.{name}" for name in _PROFILE_COLUMNS]
)
_LOAD_SQL = (
    "SELECT {columns} FROM broadlog JOIN subscription ON subscription.id = broadlog.subscription_id "
    "LEFT OUTER JOIN profile ON profile.id = subscription.profile_id WHERE broadlog.id IN ({ids})"
)
_JSON_SUBSCRIPTION = _SUBSCRIPTION_COLUMNS.index("additional_params")
_JSON_PROFILE = _PROFILE_COLUMNS.index("attributes")


def _stamp(connection: Connection, when: datetime) -> Any:
    """``when`` as the driver takes it for a broadLog timestamp column."""
    bind = _BROADLOG.c.lease_until.type.bind_processor(connection.dialect)
    return bind(when) if bind is not None else when


def _json_reader(column: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The column type's JSON decoder for this driver (sqlite3 returns text, psycopg decoded
    values), skipping the empty object most rows hold: decoding it was half of a batch's load."""
    process = column.type.result_processor(dialect, None)
    if process is None:
        return None
    return lambda value: {} if value == "{}" else process(value)


def claim(
    connection: Connection, delivery_id: int, limit: int, channel: int | None, now: datetime, lease: timedelta
) -> list[int]:
    dialect = connection.dialect
    marker = placeholder(dialect)
    sql = _CLAIM_SQL.format(
        p=marker,
        pending=int(BroadLogStatus.PENDING),
        channel=f" AND channel = {marker}" if channel is not None else "",
        lock=" FOR UPDATE SKIP LOCKED" if dialect.name == "postgresql" else "",
    )
    stamp = _stamp(connection, now)
    params: tuple[Any, ...] = (_stamp(connection, now + lease), delivery_id, stamp, stamp)
    params += (channel, limit) if channel is not None else (limit,)
    return sorted(row[0] for row in connection.exec_driver_sql(sql, params))


def load(connection: Connection, ids: list[int]) -> list[tuple[int, int, LoadedSubscription, LoadedProfile | None]]:
    if not ids:
        return []
    dialect = connection.dialect
    sql = _LOAD_SQL.format(columns=_LOAD_COLUMNS, ids=", ".join([placeholder(dialect)] * len(ids)))
    subscription_json = _json_reader(Subscription.__table__.c.additional_params, dialect)
    profile_json = _json_reader(Profile.__table__.c.attributes, dialect)
    subscription_end = 2 + len(_SUBSCRIPTION_COLUMNS)
    loaded = []
    for row in connection.exec_driver_sql(sql, tuple(ids)).fetchall():
        values = list(row[2:subscription_end])
        if subscription_json is not None:
            values[_JSON_SUBSCRIPTION] = subscription_json(values[_JSON_SUBSCRIPTION])
        profile = None
        if row[subscription_end] is not None:
            profile_values = list(row[subscription_end + 1 :])
            if profile_json is not None:
                profile_values[_JSON_PROFILE] = profile_json(profile_values[_JSON_PROFILE])
            profile = LoadedProfile(*profile_values)
        loaded.append((row[0], row[1], LoadedSubscription(*values), profile))
    return loaded


def mark_failed(
    connection: Connection,
    broadlog_id: int,
    failure_type: FailureType,
    reason: FailureReason,
    text: str,
    now: datetime,
) -> None:
    """Make the row final: Failed with Campaign's failure type and reason, and the error text."""
    connection.execute(
        update(_BROADLOG)
        .where(_BROADLOG.c.id == broadlog_id)
        .values(
            status=int(BroadLogStatus.FAILED),
            failure_type=int(failure_type),
            failure_reason=int(reason),
            error_message=text,
            lease_until=None,
            event_date=now,
        )
    )


def retry_later(connection: Connection, broadlog_id: int, retry_at: datetime, text: str, now: datetime) -> None:
    """Keep the row Pending, released, to be claimed again from ``retry_at``."""
    connection.execute(
        update(_BROADLOG)
        .where(_BROADLOG.c.id == broadlog_id)
        .values(lease_until=None, next_attempt_at=retry_at, error_message=text, event_date=now)
    )


def any_pending(connection: Connection, delivery_id: int) -> bool:
    """Whether some row of the delivery is still Pending (claimed or not)."""
    row = connection.execute(
        select(_BROADLOG.c.id)
        .where(_BROADLOG.c.delivery_id == delivery_id, _BROADLOG.c.status == int(BroadLogStatus.PENDING))
        .limit(1)
    ).first()
    return row is not None


def next_due(connection: Connection, delivery_id: int) -> datetime | None:
    """When the delivery's next Pending row may be claimed: the earliest retry time or lease end
    (a lease that lapses makes its row claimable again); None when nothing is Pending."""
    pending = (_BROADLOG.c.delivery_id == delivery_id, _BROADLOG.c.status == int(BroadLogStatus.PENDING))
    earliest = connection.scalar(
        select(_BROADLOG.c.next_attempt_at).where(*pending).order_by(_BROADLOG.c.next_attempt_at).limit(1)
    )
    if earliest is None:
        return None
    held = connection.scalar(
        select(_BROADLOG.c.lease_until)
        .where(*pending, _BROADLOG.c.lease_until.is_not(None))
        .order_by(_BROADLOG.c.lease_until)
        .limit(1)
    )
    due: datetime = earliest if held is None else min(earliest, held)
    return due


def pending_count(connection: Connection) -> int:
    """Pending rows of every running delivery: the send queue's depth."""
    delivery = cast(Table, Delivery.__table__)
    count = connection.scalar(
        select(func.count())
        .select_from(_BROADLOG.join(delivery, delivery.c.id == _BROADLOG.c.delivery_id))
        .where(delivery.c.status == DeliveryStatus.RUNNING.value, _BROADLOG.c.status == int(BroadLogStatus.PENDING))
    )
    return int(count or 0)
