"""Deliveries: creation (validated, idempotent), reading with counts, cancellation, broadLog pages.

A delivery is created ``scheduled`` (for now or for ``schedule_at``); the worker analyses it into
broadLog rows when it is due, sends them, and marks it ``completed``. Counts are derived from the
broadLog and trackingLog rows, never stored twice. Status changes go through
:mod:`domain.delivery_status`.

Creation and preview measure the pushes a message makes, with the payload encoding the sender
uses: the caller passes it (:class:`PayloadEncoding`, implemented by :mod:`push.payloads`), so the
encoding has one home and domain does not import push.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import BadRequest, Conflict, NotFound
from domain import delivery_status
from domain.fields import ID_MAX, SINGLE_LINE, Name
from domain.messages import Message, Unsendable
from domain.personalisation import LookupTables
from domain.templates.compiling import CompiledMessage, compile_message
from domain.templates.rendering import RenderContext, RenderedMessage, make_context, preview_data, render
from store.clock import stamp
from store.codes import BroadLogStatus, DeliveryStatus, FailureType, failure_reason_name, readable
from store.models import App, Audience, BroadLog, Delivery, Profile, TrackingLog
from store.types import iso, utcnow

DEFAULT_VALIDITY = 24 * 3600
MAX_TARGET_IDS = 10_000
STATUSES: tuple[str, ...] = tuple(DeliveryStatus)


class PayloadEncoding(Protocol):
    """How a rendered message becomes the push a provider is sent: :mod:`push.payloads`.

    Every function raises :class:`~domain.messages.Unsendable` (``PayloadTooLarge``, a template's
    ``RenderProblem``) for a message that cannot be sent."""

    def check_size(self, compiled: CompiledMessage, sample_context: RenderContext | None = None) -> object:
        """Refuse a message whose push could be too large at send time, for any profile."""
        ...

    def apns_request(
        self, rendered: RenderedMessage, *, broadlog_id: int, delivery_id: int, sdk: str, topic: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The APNs payload and headers of one iOS push."""
        ...

    def fcm_message(self, rendered: RenderedMessage, *, broadlog_id: int, delivery_id: int, sdk: str) -> dict[str, Any]:
        """The FCM ``message`` object of one Android push."""
        ...


class Target(BaseModel):
    """Exactly one of: profiles (external ids), audience (id), all (true), subscriptions (ids)."""

    model_config = ConfigDict(extra="forbid")
    profiles: list[Annotated[str, Field(min_length=1, max_length=255), SINGLE_LINE]] | None = Field(
        default=None, min_length=1, max_length=MAX_TARGET_IDS
    )
    audience: int | None = Field(default=None, gt=0, le=ID_MAX)
    all: Literal[True] | None = None
    subscriptions: list[Annotated[int, Field(gt=0, le=ID_MAX)]] | None = Field(
        default=None, min_length=1, max_length=MAX_TARGET_IDS
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        given = [name for name in ("profiles", "audience", "all", "subscriptions") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of profiles, audience, all, subscriptions")
        return self

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class DeliveryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    app_id: int = Field(gt=0, le=ID_MAX)
    name: Name
    message: Message
    target: Target
    platforms: list[Literal["ios", "android"]] | None = Field(default=None, min_length=1)
    schedule_at: datetime | None = None
    rate_per_second: float | None = Field(default=None, gt=0, le=1_000_000)
    validity_seconds: int | None = Field(default=None, ge=60, le=28 * 24 * 3600)
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255), SINGLE_LINE] | None = None

    @field_validator("schedule_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-12-01T09:00:00Z")
        return value


def create_delivery(
    session: Session,
    data: DeliveryCreate,
    *,
    payloads: PayloadEncoding,
    created_by: str | None = None,
    proof: bool = False,
) -> tuple[Delivery, bool]:
    """Create the delivery, or return the one made earlier with the same idempotency key.

    Returns ``(delivery, created)``. ``created_by`` names who asked for it (a console user's
    e-mail, "API key <name>"); ``proof`` marks a proof sent to test devices from the console.
    The message's templates are compiled and its worst-case
    payload size checked here (with ``payloads``, the sender's encoding), so a delivery that
    cannot be sent is refused now, not at send time.
    """
    if data.idempotency_key is not None:
        existing = session.scalar(select(Delivery).where(Delivery.idempotency_key == data.idempotency_key))
        if existing is not None:
            _check_replay(session, existing, data)
            return existing, False
    app = session.get(App, data.app_id)
    if app is None:
        raise BadRequest(f"no app with id {data.app_id}", code="unknown_app")
    platforms = _platforms(app, data)
    if data.target.audience is not None and session.get(Audience, data.target.audience) is None:
        raise BadRequest(f"no audience with id {data.target.audience}", code="unknown_audience")
    try:
        payloads.check_size(compile_message(data.message, platforms))
    except Unsendable as exc:  # a template refused, or a push that could be too large
        raise BadRequest(str(exc), code="invalid_message") from None
    delivery = Delivery(
        app_id=app.id,
        platforms=platforms,
        status=DeliveryStatus.SCHEDULED,
        idempotency_key=data.idempotency_key,
        created_by=created_by,
        proof=proof,
        **_stored(data),
    )
    session.add(delivery)
    try:
        session.flush()
    except IntegrityError:
        if data.idempotency_key is None:
            raise
        # The same key was written by a concurrent request after our look-up: answer as a replay.
        session.rollback()
        existing = session.scalar(select(Delivery).where(Delivery.idempotency_key == data.idempotency_key))
        if existing is None:
            raise
        _check_replay(session, existing, data)
        return existing, False
    return delivery, True


def _platforms(app: App, data: DeliveryCreate) -> list[str]:
    """The platforms a request asks for (all the app has when it names none), sorted."""
    available = sorted(p.platform for p in app.platforms)
    platforms = sorted(set(data.platforms or available))
    missing = [p for p in platforms if p not in available]
    if missing:
        raise BadRequest(f"the app has no {', '.join(missing)} part", code="unknown_platform")
    return platforms


def _stored(data: DeliveryCreate) -> dict[str, Any]:
    """The columns a request sets, in the form they are stored (so a replay compares equal)."""
    return {
        "name": data.name,
        "message": data.message.model_dump(mode="json", exclude_none=True),
        "target": data.target.stored(),
        "schedule_at": data.schedule_at.astimezone(UTC) if data.schedule_at else None,
        "rate_per_second": data.rate_per_second,
        "validity_seconds": data.validity_seconds or DEFAULT_VALIDITY,
    }


def _check_replay(session: Session, existing: Delivery, data: DeliveryCreate) -> None:
    """A Conflict unless ``data`` asks for what ``existing`` was created with: a reused
    idempotency key must never return a delivery that differs from the request."""
    asked = {"app_id": data.app_id, **_stored(data)}
    if data.platforms is not None:
        asked["platforms"] = sorted(set(data.platforms))
    elif (app := session.get(App, data.app_id)) is not None:
        # Omitted means every platform the app has; the app is the same unless it changed since.
        asked["platforms"] = _platforms(app, data)
    stored = {name: getattr(existing, name) for name in asked}
    if existing.schedule_at is not None:
        stored["schedule_at"] = existing.schedule_at.astimezone(UTC)
    different = [name for name in asked if asked[name] != stored[name]]
    if different:
        raise Conflict(
            f"idempotency_key {data.idempotency_key!r} was used for delivery {existing.id} with a different "
            f"{_names(different)}; use a new key for a new delivery",
            code="idempotency_conflict",
        )


def _names(fields: list[str]) -> str:
    return fields[0] if len(fields) == 1 else f"{', '.join(fields[:-1])} and {fields[-1]}"


class DeliveryPreview(BaseModel):
    """Render a message for one profile (or none) as each platform's push would carry it."""

    model_config = ConfigDict(extra="forbid")
    app_id: int = Field(gt=0, le=ID_MAX)
    message: Message
    profile: Annotated[str, Field(min_length=1, max_length=255), SINGLE_LINE] | None = Field(
        default=None, description="external_id of the profile to render for"
    )
    sdk: Literal["campaign-classic", "campaign-standard", "edge", "native"] = "campaign-classic"


class _PreviewSubscription:
    """What templates may read of a subscription, for a preview without a real device."""

    def __init__(self, platform: str, sdk: str) -> None:
        self.platform, self.sdk, self.user_key = platform, sdk, None
        self.additional_params: dict[str, Any] = {}
        for name in (
            "device_name",
            "device_model",
            "device_brand",
            "device_manufacturer",
            "os_name",
            "os_version",
            "os_language",
            "ecid",
            "token",
            "push_provider",
        ):
            setattr(self, name, None)


def preview(session: Session, data: DeliveryPreview, *, payloads: PayloadEncoding) -> dict[str, Any]:
    app = session.get(App, data.app_id)
    if app is None:
        raise BadRequest(f"no app with id {data.app_id}", code="unknown_app")
    profile = None
    if data.profile is not None:
        profile = session.scalar(select(Profile).where(Profile.external_id == data.profile))
        if profile is None:
            raise BadRequest(f"no profile with external_id {data.profile!r}", code="unknown_profile")
    parts = {p.platform: p for p in app.platforms}
    result: dict[str, Any] = {}
    tables = LookupTables.in_session(session)
    try:
        compiled = compile_message(data.message, sorted(parts))
        for platform, part in sorted(parts.items()):
            context = make_context(profile, _PreviewSubscription(platform, data.sdk), tables)  # type: ignore[arg-type]
            rendered = render(compiled, context, platform)
            if platform == "ios":
                payload, headers = payloads.apns_request(
                    rendered, broadlog_id=1, delivery_id=1, sdk=data.sdk, topic=part.app_identifier
                )
                result[platform] = {"rendered": preview_data(rendered), "payload": payload, "headers": headers}
            else:
                message = payloads.fcm_message(rendered, broadlog_id=1, delivery_id=1, sdk=data.sdk)
                result[platform] = {"rendered": preview_data(rendered), "payload": message}
            result[platform]["size"] = len(
                json.dumps(result[platform]["payload"], separators=(",", ":"), ensure_ascii=False).encode()
            )
        sample = make_context(profile, _PreviewSubscription("ios", data.sdk), tables)  # type: ignore[arg-type]
        payloads.check_size(compiled, sample)
    except Unsendable as exc:  # a template refused or failing for this profile, or a push too large
        raise BadRequest(str(exc), code="invalid_message") from None
    return result


def get_delivery(session: Session, delivery_id: int) -> Delivery:
    delivery = session.get(Delivery, delivery_id) if 0 < delivery_id <= ID_MAX else None
    if delivery is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    return delivery


def cancel(session: Session, delivery: Delivery, *, cancelled_by: str | None = None) -> Delivery:
    """Stop a scheduled or running delivery; its Pending messages become Cancelled. ``cancelled_by``
    names who did (as ``created_by`` does)."""
    if not delivery_status.cancel(session, delivery.id, utcnow(), cancelled_by=cancelled_by):
        session.refresh(delivery)  # a worker may have moved it since it was read
        raise delivery_status.refusal(delivery_status.CANCEL, delivery.status)
    session.execute(
        update(BroadLog)
        .where(BroadLog.delivery_id == delivery.id, BroadLog.status == BroadLogStatus.PENDING)
        .values(status=int(BroadLogStatus.CANCELLED), lease_until=None, event_date=stamp(session))
    )
    return delivery


def counts(session: Session, delivery_id: int) -> dict[str, int]:
    by_status = dict(
        session.execute(
            select(BroadLog.status, func.count()).where(BroadLog.delivery_id == delivery_id).group_by(BroadLog.status)
        ).all()
    )
    tracked = dict(
        session.execute(
            select(TrackingLog.interaction, func.count(func.distinct(TrackingLog.broadlog_id)))
            .where(TrackingLog.delivery_id == delivery_id)
            .group_by(TrackingLog.interaction)
        ).all()
    )
    resent = session.scalar(
        select(func.count()).where(BroadLog.delivery_id == delivery_id, BroadLog.resent_after_crash.is_(True))
    )
    return {
        "targeted": sum(by_status.values()),
        "pending": by_status.get(BroadLogStatus.PENDING, 0),
        "sent": by_status.get(BroadLogStatus.SENT, 0),
        "failed": by_status.get(BroadLogStatus.FAILED, 0),
        "ignored": by_status.get(BroadLogStatus.IGNORED, 0),
        "cancelled": by_status.get(BroadLogStatus.CANCELLED, 0),
        "received": tracked.get("received", 0),
        "opened": tracked.get("opened", 0),
        "clicked": tracked.get("clicked", 0),
        "resent_after_crash": int(resent or 0),
    }


def describe(session: Session, delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "app_id": delivery.app_id,
        "name": delivery.name,
        "status": delivery.status,
        "message": delivery.message,
        "target": delivery.target,
        "platforms": delivery.platforms,
        "schedule_at": iso(delivery.schedule_at),
        "rate_per_second": delivery.rate_per_second,
        "validity_seconds": delivery.validity_seconds,
        "idempotency_key": delivery.idempotency_key,
        "counts": counts(session, delivery.id),
        "created_at": iso(delivery.created_at),
        "started_at": iso(delivery.started_at),
        "ended_at": iso(delivery.ended_at),
        "error": delivery.error,
        "created_by": delivery.created_by,
        "cancelled_by": delivery.cancelled_by,
        "proof": delivery.proof,
    }


def list_query(
    *, app_id: int | None = None, status: str | None = None, apps: frozenset[int] | None = None
) -> Select[Any]:
    """Deliveries, of one app and in one status when given, of ``apps`` only when given."""
    stmt = select(Delivery)
    if apps is not None:
        stmt = stmt.where(Delivery.app_id.in_(sorted(apps)))
    if app_id is not None:
        stmt = stmt.where(Delivery.app_id == app_id)
    if status is not None:
        stmt = stmt.where(Delivery.status == status)
    return stmt


def broadlogs_query(delivery_id: int, status: int | None = None) -> Select[Any]:
    stmt = select(BroadLog).where(BroadLog.delivery_id == delivery_id)
    if status is not None:
        stmt = stmt.where(BroadLog.status == status)
    return stmt


def describe_broadlog(row: BroadLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "delivery_id": row.delivery_id,
        "subscription_id": row.subscription_id,
        "profile_id": row.profile_id,
        "channel": row.channel,
        "address": row.address,
        "status": readable(BroadLogStatus(row.status)),
        "failure_type": readable(FailureType(row.failure_type)) if row.failure_type is not None else None,
        "failure_reason": failure_reason_name(row.failure_reason),
        "failure_reason_code": row.failure_reason,
        "error_message": row.error_message,
        "provider_message_id": row.provider_message_id,
        "attempts": row.attempts,
        "resent_after_crash": row.resent_after_crash,
        "event_date": iso(row.event_date),
    }


def due(delivery: Delivery, now: datetime) -> bool:
    return delivery.status == DeliveryStatus.SCHEDULED and (delivery.schedule_at is None or delivery.schedule_at <= now)


def validity_end(delivery: Delivery) -> datetime:
    start = delivery.started_at or delivery.created_at
    return start + timedelta(seconds=delivery.validity_seconds or DEFAULT_VALIDITY)
