"""A delivery's report: rates, sent and opened over time, failures by type and reason, and the
broadLog searched or read whole.

Counts come from :func:`domain.deliveries.counts`, the function the API's delivery answers with,
so the report and ``GET /api/v1/deliveries/{id}`` never disagree. Everything here is read-only
and sized for a delivery of millions of messages: the database groups and counts (one row per
time bucket or failure group comes back, never one per message), and the broadLog is read one
keyset page or chunk at a time. The SQL is the same on SQLite and PostgreSQL: a time bucket is
``epoch - epoch % width`` over ``EXTRACT(epoch ...)``, which SQLAlchemy renders as ``STRFTIME('%s')``
on SQLite, and ``%`` keeps the fraction PostgreSQL's seconds carry inside the bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import BigInteger, ColumnElement, Select, extract, func, literal_column, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from domain import audiences, deliveries, profiles
from domain.fields import SINGLE_LINE
from domain.paging import keyset, split_page
from store.codes import BroadLogStatus, DeliveryStatus, FailureReason, FailureType, readable
from store.models import TOKEN_MAX, BroadLog, Delivery, Profile, TrackingLog

#: Bucket widths a chart may use, in seconds; each divides the next larger calendar unit, so
#: buckets start on whole minutes, hours and (UTC) days.
BUCKET_SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_BUCKETS = 60
#: A delivery whose status may still change its counts (the console polls it).
LIVE = frozenset({DeliveryStatus.SCHEDULED.value, DeliveryStatus.RUNNING.value})
#: broadLog statuses whose rows carry a failure type and reason.
FAILURE_STATUSES = (int(BroadLogStatus.FAILED), int(BroadLogStatus.IGNORED))
STATUS_NAMES: dict[str, BroadLogStatus] = {readable(s) or "": s for s in BroadLogStatus}


def rates(counts: Mapping[str, int]) -> dict[str, float | None]:
    """Delivery rate (sent / targeted), open rate (opened / sent) and click rate (clicked / sent)
    as fractions; None where nothing was targeted or sent yet."""

    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "delivery": share(counts["sent"], counts["targeted"]),
        "open": share(counts["opened"], counts["sent"]),
        "click": share(counts["clicked"], counts["sent"]),
    }


def progress(counts: Mapping[str, int]) -> float:
    """The share of targeted messages no longer Pending (0 before analysis made any)."""
    targeted = counts["targeted"]
    return (targeted - counts["pending"]) / targeted if targeted else 0.0


def live(session: Session, delivery: Delivery) -> dict[str, Any]:
    """What the report shows while a delivery runs: status, counts (those the API reports),
    rates, progress, and whether it can still change."""
    counts = deliveries.counts(session, delivery.id)
    return {
        "id": delivery.id,
        "status": delivery.status,
        "finished": delivery.status not in LIVE,
        "counts": counts,
        "rates": rates(counts),
        "progress": progress(counts),
    }


def target_summary(session: Session, target: Mapping[str, Any]) -> str:
    """A delivery's stored target in the console's words: ``All subscribers``, ``Audience "VIP"
    (#3)``, ``Profiles: alice, bob and 3 more``, ``Test devices: 2``."""
    if target.get("all"):
        return "All subscribers"
    if (audience_id := target.get("audience")) is not None:
        try:
            return f"Audience \u201c{audiences.get(session, int(audience_id)).name}\u201d (#{audience_id})"
        except NotFound:
            return f"Audience #{audience_id} (deleted)"
    if profiles := target.get("profiles"):
        shown = ", ".join(str(p) for p in profiles[:3])
        return f"Profiles: {shown}" + (f" and {len(profiles) - 3} more" if len(profiles) > 3 else "")
    if subscriptions := target.get("subscriptions"):
        return f"Test devices: {len(subscriptions)}"
    return "Unknown target"


# -- sent and opened over time -------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    start: datetime
    sent: int
    opened: int


@dataclass(frozen=True)
class Series:
    """Messages Sent (by their broadLog event date) and first opens (by the trackingLog time) per
    bucket of ``seconds``, with every bucket between the first and the last, empty ones included."""

    seconds: int
    buckets: list[Bucket]

    @property
    def sent(self) -> int:
        return sum(b.sent for b in self.buckets)

    @property
    def opened(self) -> int:
        return sum(b.opened for b in self.buckets)


def _epoch(moment: datetime) -> int:
    return math.floor(moment.timestamp())  # whole seconds, as STRFTIME('%s') and the bucket floor give


def bucket_width(first: int, last: int, max_buckets: int = MAX_BUCKETS) -> int:
    """The narrowest :data:`BUCKET_SECONDS` width (or a whole number of days past those) that
    covers epoch seconds ``first`` to ``last`` in at most ``max_buckets`` buckets."""
    for width in BUCKET_SECONDS:
        if last // width - first // width < max_buckets:
            return width
    days = 1
    while last // (86400 * days) - first // (86400 * days) >= max_buckets:
        days += 1
    return 86400 * days


def _bucket(column: Any, width: int) -> ColumnElement[Any]:
    """The epoch second a timestamp's bucket starts at (see the module's docstring)."""
    seconds = extract("epoch", column)
    return (seconds - seconds % literal_column(str(int(width)), BigInteger)).label("bucket")


def sent_and_opened(session: Session, delivery_id: int, max_buckets: int = MAX_BUCKETS) -> Series:
    """The chart's numbers: two bounded aggregates find the time span, two grouped counts fill
    its buckets. Opens count distinct messages, as :func:`domain.deliveries.counts` does."""
    spans = [
        session.execute(
            select(func.min(BroadLog.event_date), func.max(BroadLog.event_date)).where(
                BroadLog.delivery_id == delivery_id, BroadLog.status == int(BroadLogStatus.SENT)
            )
        ).one(),
        session.execute(
            select(func.min(TrackingLog.log_date), func.max(TrackingLog.log_date)).where(
                TrackingLog.delivery_id == delivery_id, TrackingLog.interaction == "opened"
            )
        ).one(),
    ]
    moments = [_epoch(m) for span in spans for m in span if m is not None]
    if not moments:
        return Series(1, [])
    width = bucket_width(min(moments), max(moments), max_buckets)
    sent_bucket = _bucket(BroadLog.event_date, width)
    sent = session.execute(
        select(sent_bucket, func.count())
        .where(BroadLog.delivery_id == delivery_id, BroadLog.status == int(BroadLogStatus.SENT))
        .group_by(sent_bucket)
    ).all()
    open_bucket = _bucket(TrackingLog.log_date, width)
    opened = session.execute(
        select(open_bucket, func.count(func.distinct(TrackingLog.broadlog_id)))
        .where(TrackingLog.delivery_id == delivery_id, TrackingLog.interaction == "opened")
        .group_by(open_bucket)
    ).all()
    sent_by = {int(start): int(count) for start, count in sent}
    opened_by = {int(start): int(count) for start, count in opened}
    # Rows written between the span and the counts may fall past it: the buckets stretch to them.
    starts = [min(moments) // width * width, max(moments) // width * width, *sent_by, *opened_by]
    return Series(
        width,
        [
            Bucket(datetime.fromtimestamp(start, UTC), sent_by.get(start, 0), opened_by.get(start, 0))
            for start in range(min(starts), max(starts) + width, width)
        ],
    )


# -- failures ------------------------------------------------------------------------------------


class _Codes:
    """Campaign's names of a broadLog row's codes (``failed``, ``hard``, ``user_unknown``)."""

    status: int
    failure_type: int | None
    failure_reason: int | None

    @property
    def status_name(self) -> str:
        return _name(BroadLogStatus, self.status) or ""

    @property
    def type_name(self) -> str | None:
        return _name(FailureType, self.failure_type)

    @property
    def reason_name(self) -> str | None:
        return _name(FailureReason, self.failure_reason)


def _name(codes: type[IntEnum], value: int | None) -> str | None:
    """The readable name of a code; an unknown number stays a number."""
    if value is None:
        return None
    try:
        return readable(codes(value))
    except ValueError:
        return str(value)


@dataclass(frozen=True)
class FailureGroup(_Codes):
    """broadLog rows of one status (Failed or Ignored), failure type and reason, with one of their
    error messages as an example."""

    status: int
    failure_type: int | None
    failure_reason: int | None
    count: int
    example: str | None


def failure_groups(session: Session, delivery_id: int) -> list[FailureGroup]:
    """The delivery's Failed and Ignored messages grouped by status, failure type and reason,
    most frequent first."""
    rows = session.execute(
        select(
            BroadLog.status,
            BroadLog.failure_type,
            BroadLog.failure_reason,
            func.count(),
            func.min(BroadLog.error_message),
        )
        .where(BroadLog.delivery_id == delivery_id, BroadLog.status.in_(FAILURE_STATUSES))
        .group_by(BroadLog.status, BroadLog.failure_type, BroadLog.failure_reason)
    ).all()
    groups = [FailureGroup(int(s), t, r, int(n), example) for s, t, r, n, example in rows]
    return sorted(groups, key=lambda g: (-g.count, g.status, g.failure_type or 0, g.failure_reason or 0))


# -- the broadLog, searched and whole -------------------------------------------------------------


class LogSearch(BaseModel):
    """Filters of a broadLog search: status (``failed``...), token (the whole address or its
    beginning), profile (external id), failure type and reason (Campaign's codes); ``order`` is
    ``newest`` (highest id first) or ``id``; ``after`` is the last id of the previous page."""

    model_config = ConfigDict(extra="forbid")
    STATUSES: ClassVar[tuple[str, ...]] = ("pending", "sent", "failed", "ignored", "cancelled")
    status: Literal["pending", "sent", "failed", "ignored", "cancelled"] | None = None
    token: Annotated[str, Field(max_length=TOKEN_MAX), SINGLE_LINE] | None = None
    profile: Annotated[str, Field(max_length=255), SINGLE_LINE] | None = None
    failure_type: int | None = None
    failure_reason: int | None = None
    order: Literal["newest", "id"] = "newest"
    after: int | None = Field(default=None, ge=1, le=2**63 - 1)

    @field_validator("status", "token", "profile", "failure_type", "failure_reason", "after", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        """A form's empty or blank field filters nothing."""
        if isinstance(value, str):
            value = value.strip()
        return None if value == "" else value

    @field_validator("failure_type", "failure_reason")
    @classmethod
    def _code(cls, value: int | None, info: ValidationInfo) -> int | None:
        codes = FailureType if info.field_name == "failure_type" else FailureReason
        if value is not None and value not in set(codes):
            known = ", ".join(str(int(c)) for c in codes)
            raise PydanticCustomError("unknown_code", "must be one of Campaign's codes: {known}", {"known": known})
        return value


@dataclass(frozen=True)
class LogRow(_Codes):
    """One broadLog message as the report lists it, with its profile's external id."""

    id: int
    status: int
    channel: int
    address: str | None
    profile_id: int | None
    profile: str | None
    failure_type: int | None
    failure_reason: int | None
    error_message: str | None
    provider_message_id: str | None
    attempts: int
    event_date: datetime


_LOG_COLUMNS = (
    BroadLog.id,
    BroadLog.status,
    BroadLog.channel,
    BroadLog.address,
    BroadLog.profile_id,
    Profile.external_id,
    BroadLog.failure_type,
    BroadLog.failure_reason,
    BroadLog.error_message,
    BroadLog.provider_message_id,
    BroadLog.attempts,
    BroadLog.event_date,
)


def _rows(stmt: Select[Any]) -> Select[*tuple[Any, ...]]:
    """``stmt`` (a select of broadLog rows) reading the report's columns, profile id joined."""
    return stmt.outerjoin(Profile, Profile.id == BroadLog.profile_id).with_only_columns(*_LOG_COLUMNS)


def _id_bounds(session: Session, delivery_id: int) -> tuple[int, int] | None:
    """The delivery's lowest and highest broadLog ids (the analysis inserts its rows together)."""
    low, high = session.execute(
        select(func.min(BroadLog.id), func.max(BroadLog.id)).where(BroadLog.delivery_id == delivery_id)
    ).one()
    return None if low is None else (int(low), int(high))


def _walk(delivery_id: int, bounds: tuple[int, int]) -> Select[Any]:
    """The delivery's rows read along the primary key between its bounds. ``delivery_id + 0``
    keeps the planner (SQLite's and PostgreSQL's alike) off ``ix_broadlog_claim``, whose order is
    not id order: through it every page would sort all the delivery's remaining rows first."""
    return select(BroadLog).where(BroadLog.id.between(*bounds), BroadLog.delivery_id + 0 == delivery_id)


def _filtered(stmt: Select[Any], search: LogSearch) -> Select[Any]:
    if search.token:
        # substr keeps the match case-sensitive on both databases (LIKE is not on SQLite).
        stmt = stmt.where(func.substr(BroadLog.address, 1, len(search.token)) == search.token)
    if search.profile:
        stmt = stmt.where(BroadLog.profile_id.in_(select(Profile.id).where(Profile.external_id == search.profile)))
    if search.failure_type is not None:
        stmt = stmt.where(BroadLog.failure_type == search.failure_type)
    if search.failure_reason is not None:
        stmt = stmt.where(BroadLog.failure_reason == search.failure_reason)
    return stmt


def search(session: Session, delivery_id: int, filters: LogSearch, limit: int = 50) -> tuple[list[LogRow], int | None]:
    """One page of the delivery's broadLog rows matching ``filters``, keyset-paged on id in
    ``filters.order``; returns the rows and the ``after`` of the next page (None on the last one).

    With a status, the API's :func:`domain.deliveries.broadlogs_query` finds the rows through the
    (delivery, status) index and only they are sorted: the statuses searched for are mostly the
    rare ones (failed, pending). Without one, the rows are walked in id order (:func:`_walk`)."""
    if filters.status:
        stmt = deliveries.broadlogs_query(delivery_id, int(STATUS_NAMES[filters.status]))
    elif (bounds := _id_bounds(session, delivery_id)) is not None:
        stmt = _walk(delivery_id, bounds)
    else:
        return [], None
    stmt = _filtered(stmt, filters)
    page = keyset(_rows(stmt), BroadLog.id, after=filters.after, limit=limit, descending=filters.order == "newest")
    return split_page([LogRow(*row) for row in session.execute(page)], limit, lambda row: row.id)


def iter_broadlog(session: Session, delivery_id: int, chunk: int = 5000) -> Iterator[LogRow]:
    """Every broadLog row of the delivery in id order, read ``chunk`` rows at a time along the
    primary key (the CSV download: memory and each read stay bounded whatever the delivery's size)."""
    bounds = _id_bounds(session, delivery_id)
    if bounds is None:
        return
    last = bounds[0] - 1
    while True:
        stmt = _rows(_walk(delivery_id, bounds).where(BroadLog.id > last)).order_by(BroadLog.id).limit(chunk)
        # Plain rows through the session's connection: the ORM's row loading doubled the cost.
        rows = [LogRow(*row) for row in session.connection().execute(stmt)]
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1].id


def known_profile(session: Session, external_id: str) -> bool:
    """Whether a profile has this external id (a search by an unknown one says so)."""
    return profiles.find(session, external_id) is not None
