"""Quarantine of push tokens (Campaign's non-deliverable addresses, docs/protocols.md §4).

A hard error (token gone or invalid) quarantines the token at once; soft errors count toward
quarantine: ``quarantine_soft_errors`` errors at least ``quarantine_error_spacing_hours`` apart,
the count restarting after ``quarantine_reset_days`` without an error. A quarantined token's
subscriptions are disabled, so analysis skips them. Registering a token again after APNs said it
was unregistered (410 with a timestamp) releases it, and so does an operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, select, update
from sqlalchemy.orm import Session

from core.errors import NotFound
from domain.fields import ID_MAX
from domain.paging import keyset, split_page
from store.codes import failure_reason_name
from store.models import Address, Subscription
from store.types import iso, utcnow

VALID, WITH_ERRORS, QUARANTINE, DENYLISTED = "valid", "with_errors", "quarantine", "denylisted"


@dataclass(frozen=True)
class Policy:
    soft_errors: int = 5
    spacing: timedelta = timedelta(days=1)
    reset_after: timedelta = timedelta(days=10)


def _address(session: Session, app_id: int, platform: str, token: str) -> Address:
    address = session.scalar(select(Address).where(Address.app_id == app_id, Address.address == token))
    if address is None:
        address = Address(app_id=app_id, platform=platform, address=token, status=VALID, error_count=0)
        session.add(address)
    return address


def _disable(session: Session, app_id: int, token: str, disabled: bool) -> None:
    session.execute(
        update(Subscription).where(Subscription.app_id == app_id, Subscription.token == token).values(disabled=disabled)
    )


def record_hard_error(
    session: Session,
    *,
    app_id: int,
    platform: str,
    token: str,
    reason: int,
    text: str,
    unregistered_at: datetime | None = None,
    now: datetime | None = None,
) -> Address:
    """Quarantine ``token`` now and disable its subscriptions."""
    now = now or utcnow()
    address = _address(session, app_id, platform, token)
    if address.status != DENYLISTED:
        address.status = QUARANTINE
    address.error_count = (address.error_count or 0) + 1
    address.failure_reason, address.error_text = reason, text[:1000]
    address.first_error_at = address.first_error_at or now
    address.last_error_at = now
    address.unregistered_at = unregistered_at or address.unregistered_at
    _disable(session, app_id, token, True)
    return address


def record_soft_error(
    session: Session,
    *,
    app_id: int,
    platform: str,
    token: str,
    reason: int,
    text: str,
    policy: Policy,
    now: datetime | None = None,
) -> Address:
    """Count a soft error; the token goes to quarantine when enough errors have accumulated."""
    now = now or utcnow()
    address = _address(session, app_id, platform, token)
    last = address.last_error_at
    if last is not None and now - last > policy.reset_after:
        address.error_count = 0
    if last is None or now - last >= policy.spacing or address.error_count == 0:
        address.error_count = (address.error_count or 0) + 1
        address.last_error_at = now
    address.first_error_at = address.first_error_at or now
    address.failure_reason, address.error_text = reason, text[:1000]
    if address.status in (VALID, WITH_ERRORS):
        address.status = QUARANTINE if address.error_count >= policy.soft_errors else WITH_ERRORS
    if address.status == QUARANTINE:
        _disable(session, app_id, token, True)
    return address


def release_reregistered(session: Session, *, app_id: int | None = None) -> int:
    """Release the tokens APNs called unregistered (410) whose app registered them again later.

    Registration stays a single statement, so this runs where it matters instead: before a
    delivery of the app is analysed. Returns how many were released.
    """
    registered_later = exists().where(
        Subscription.app_id == Address.app_id,
        Subscription.token == Address.address,
        Subscription.last_registered_at > Address.unregistered_at,
    )
    stmt = select(Address).where(Address.status == QUARANTINE, Address.unregistered_at.is_not(None), registered_later)
    if app_id is not None:
        stmt = stmt.where(Address.app_id == app_id)
    released = list(session.scalars(stmt))
    for address in released:
        _release(session, address)
    return len(released)


def _release(session: Session, address: Address) -> None:
    address.status, address.error_count = VALID, 0
    address.unregistered_at = None
    _disable(session, address.app_id, address.address, False)


def release(session: Session, address_id: int, *, apps: frozenset[int] | None = None) -> Address:
    """An operator's release (``DELETE /api/v1/quarantine/{id}``), of an entry of ``apps`` only
    when given."""
    address = session.get(Address, address_id) if 0 < address_id <= ID_MAX else None
    if address is None or (apps is not None and address.app_id not in apps):
        raise NotFound(f"no quarantine entry with id {address_id}")
    _release(session, address)
    return address


def list_query(
    *, app_id: int | None = None, status: str | None = None, apps: frozenset[int] | None = None
) -> Select[Any]:
    """Quarantine entries, of one app and in one status when given, of ``apps`` only when given."""
    stmt = select(Address)
    if apps is not None:
        stmt = stmt.where(Address.app_id.in_(sorted(apps)))
    if app_id is not None:
        stmt = stmt.where(Address.app_id == app_id)
    if status is not None:
        stmt = stmt.where(Address.status == status)
    return stmt


def describe(address: Address) -> dict[str, Any]:
    return {
        "id": address.id,
        "app_id": address.app_id,
        "platform": address.platform,
        "address": address.address,
        "status": address.status,
        "error_count": address.error_count,
        "failure_reason": failure_reason_name(address.failure_reason),
        "failure_reason_code": address.failure_reason,
        "error_text": address.error_text,
        "first_error_at": iso(address.first_error_at),
        "last_error_at": iso(address.last_error_at),
        "unregistered_at": iso(address.unregistered_at),
    }


STATUSES = (VALID, WITH_ERRORS, QUARANTINE, DENYLISTED)
PLATFORMS = ("ios", "android")


def newest_first(
    session: Session,
    *,
    app_id: int | None = None,
    status: str | None = None,
    platform: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[Address], int | None]:
    """One page of :func:`list_query`'s entries (and of one platform when given), the latest entry
    first, starting below the id ``before`` when given (the console's pages). Returns the entries
    and the ``before`` of the next page, None on the last one."""
    stmt = list_query(app_id=app_id, status=status)
    if platform is not None:
        stmt = stmt.where(Address.platform == platform)
    found = session.scalars(keyset(stmt, Address.id, after=before, limit=limit, descending=True)).all()
    return split_page(found, limit, lambda address: address.id)
