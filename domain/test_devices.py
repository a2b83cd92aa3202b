"""Test devices: the subscriptions of an app that marketers send proofs to (Campaign's seed
addresses), kept per app by the console.

A test device names a subscription of its own app that can receive a push now: an unknown
subscription, one of another app, a disabled one or one whose token is in quarantine is refused
with a :class:`~core.errors.BadRequest` saying why; the same subscription twice is a Conflict.
Removing a subscription removes its test device too (foreign key cascade). What a proof did on
each device is read back with :func:`proof_outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from core.errors import BadRequest, Conflict, NotFound
from domain.fields import ID_MAX, Name
from domain.quarantine import QUARANTINE
from store.codes import BroadLogStatus, Channel, FailureReason
from store.models import Address, BroadLog, Delivery, Profile, Subscription, TestDevice
from store.types import utcnow

#: How a marketer names the subscription to add: its id, its push token, or its profile.
FindBy = Literal["subscription", "token", "profile"]
MAX_PER_APP = 100

_LABEL: TypeAdapter[str] = TypeAdapter(Name)


@dataclass(frozen=True)
class Device:
    """A test device with what the console shows of its subscription."""

    id: int
    app_id: int
    subscription_id: int
    label: str
    platform: str
    token: str
    profile: str | None  # the profile's external id
    disabled: bool


def list_for_app(session: Session, app_id: int) -> list[Device]:
    """The app's test devices, by label, with their subscription rows."""
    return by_app(session, app_id).get(app_id, [])


def by_app(session: Session, app_id: int | None = None) -> dict[int, list[Device]]:
    """Test devices per app id (of one app when given), each list by label."""
    stmt = (
        select(TestDevice, Subscription)
        .join(Subscription, Subscription.id == TestDevice.subscription_id)
        .order_by(TestDevice.app_id, TestDevice.label, TestDevice.id)
    )
    if app_id is not None:
        stmt = stmt.where(TestDevice.app_id == app_id)
    found: dict[int, list[Device]] = {}
    for device, sub in session.execute(stmt):
        found.setdefault(device.app_id, []).append(
            Device(
                id=device.id,
                app_id=device.app_id,
                subscription_id=sub.id,
                label=device.label,
                platform=sub.platform,
                token=sub.token,
                profile=sub.profile.external_id if sub.profile is not None else None,
                disabled=sub.disabled,
            )
        )
    return found


def find_subscriptions(session: Session, app_id: int, by: FindBy, value: str) -> list[int]:
    """Ids of the app's subscriptions ``value`` names: a subscription id, a push token, or a
    profile's external id (every subscription of that profile in the app). Nothing found is a
    BadRequest that says what was looked for."""
    value = value.strip()
    if not value:
        raise BadRequest("give a subscription id, a push token or a profile external id", code="missing_value")
    if len(value) > 4096:
        raise BadRequest("that value is too long to name a subscription", code="invalid_value")
    if by == "subscription":
        if not (value.isascii() and value.isdigit()) or len(value) > 10 or not 0 < int(value) <= ID_MAX:
            raise BadRequest(f"{value[:40]!r} is not a subscription id (a positive number)", code="invalid_value")
        return [int(value)]  # add() says whether it exists and belongs to the app
    if by == "token":
        stmt = select(Subscription.id).where(Subscription.app_id == app_id, Subscription.token.in_(_token_forms(value)))
        what = "push token"
    else:
        profile = select(Profile.id).where(Profile.external_id == value).scalar_subquery()
        stmt = select(Subscription.id).where(Subscription.app_id == app_id, Subscription.profile_id == profile)
        what = "profile"
    ids = list(session.scalars(stmt.order_by(Subscription.id)))
    if not ids:
        raise BadRequest(f"the app has no subscription of that {what}", code="unknown_subscription")
    return ids


def _token_forms(value: str) -> list[str]:
    """A token as typed, and as stored for iOS (lower-case hex without spaces or brackets)."""
    ios = value.strip("<>").replace(" ", "").lower()
    return sorted({value, ios})


def add(session: Session, app_id: int, subscription_id: int, label: str) -> TestDevice:
    """Make the app's subscription ``subscription_id`` a test device called ``label``."""
    try:
        label = _LABEL.validate_python(label.strip())
    except ValidationError as exc:
        raise BadRequest(f"label: {exc.errors()[0]['msg']}", code="invalid_label") from None
    sub = session.get(Subscription, subscription_id) if 0 < subscription_id <= ID_MAX else None
    if sub is None:
        raise BadRequest(f"no subscription with id {subscription_id}", code="unknown_subscription")
    if sub.app_id != app_id:
        raise BadRequest(f"subscription {subscription_id} belongs to another app", code="other_app")
    quarantined = session.scalar(
        select(exists().where(Address.app_id == app_id, Address.address == sub.token, Address.status == QUARANTINE))
    )
    if quarantined:
        raise BadRequest(
            f"subscription {subscription_id}'s token is in quarantine: release it first", code="quarantined"
        )
    if sub.disabled:
        raise BadRequest(f"subscription {subscription_id} is disabled", code="disabled_subscription")
    taken = session.scalar(
        select(TestDevice.label).where(TestDevice.app_id == app_id, TestDevice.subscription_id == subscription_id)
    )
    if taken is not None:
        raise Conflict(f"subscription {subscription_id} is already the test device {taken!r}", code="duplicate")
    count = len(list_for_app(session, app_id))
    if count >= MAX_PER_APP:
        raise BadRequest(f"an app keeps at most {MAX_PER_APP} test devices", code="too_many")
    device = TestDevice(app_id=app_id, subscription_id=subscription_id, label=label, created_at=utcnow())
    session.add(device)
    session.flush()
    return device


def remove(session: Session, app_id: int, device_id: int) -> None:
    """Remove the app's test device ``device_id`` (its subscription stays)."""
    device = session.get(TestDevice, device_id) if 0 < device_id <= ID_MAX else None
    if device is None or device.app_id != app_id:
        raise NotFound(f"the app has no test device with id {device_id}")
    session.delete(device)
    session.flush()


def subscription_ids(session: Session, app_id: int) -> set[int]:
    """The subscription ids of the app's test devices (what a proof may be sent to)."""
    return set(session.scalars(select(TestDevice.subscription_id).where(TestDevice.app_id == app_id)))


@dataclass(frozen=True)
class Outcome:
    """What a proof did on one device: its broadLog status and, when not sent, why."""

    label: str
    platform: str
    status: str  # Pending, Sent, Failed, Ignored, Cancelled
    reason: str | None
    error: str | None


def proof_outcome(session: Session, delivery: Delivery) -> list[Outcome]:
    """One row per message of ``delivery``, labelled with the test device it went to (the token
    when the device was removed since), by label. Empty until the worker has analysed it."""
    stmt = (
        select(BroadLog, TestDevice.label)
        .outerjoin(
            TestDevice,
            (TestDevice.subscription_id == BroadLog.subscription_id) & (TestDevice.app_id == delivery.app_id),
        )
        .where(BroadLog.delivery_id == delivery.id)
        .order_by(BroadLog.id)
    )
    rows = [
        Outcome(
            label=label or f"token {(row.address or '')[:12]}…",
            platform="iOS" if row.channel == Channel.IOS else "Android",
            status=_words(BroadLogStatus(row.status)),
            reason=_words(FailureReason(row.failure_reason)) if row.failure_reason is not None else None,
            error=row.error_message,
        )
        for row, label in session.execute(stmt)
    ]
    return sorted(rows, key=lambda outcome: outcome.label.lower())


def _words(code: IntEnum) -> str:
    """``FailureReason.IN_QUARANTINE`` -> ``In quarantine``, as Campaign's console writes it."""
    return code.name.replace("_", " ").capitalize()
