"""Erasure of a person: everything that names them goes, in the caller's transaction; the counts
that do not name anyone stay.

What goes, for the profile and for the subscriptions it owns (or whose user key still names it):

- the profile row and its audience memberships;
- the subscriptions themselves (token, device data such as the IMEI and device name, ECID,
  additional params), the quarantine entries of their tokens, and the Campaign Standard identity
  rows (ECID -> token, ECID -> app) of their ECIDs in their apps' orgs;
- in broadLog, the link to the person: profile, subscription and address (the token) are
  cleared, the row itself stays so that delivery counts do not change; in trackingLog, the
  profile and the ECID;
- the external id (and e-mail) wherever it was copied: delivery targets that listed it, sync
  rejects that quote it, personalisation rows keyed by it or holding it, examples of refused lines
  kept in sync files' and runs' details.

The person is queued for the Platform too (:class:`store.models.PrivacyRequest`, their identities
sealed with the secret key): the next ``sync logs`` asks its Privacy Service to delete them. Nothing
is logged but counts and the internal profile id. Functions flush; the caller commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Text, and_, cast, delete, or_, select, tuple_, update
from sqlalchemy.orm import Session

from core.secrets import SecretBox
from domain.profiles import get_profile
from store.models import (
    Address,
    App,
    AudienceMember,
    BroadLog,
    Delivery,
    LookupRow,
    PrivacyRequest,
    PushIdentity,
    StandardRegistration,
    Subscription,
    SyncFile,
    SyncReject,
    SyncRun,
    TrackingLog,
)

log = logging.getLogger("pushgate.profiles")
#: What replaces a text that named the person in kept details.
ERASED = "(erased)"


def erase_profile(session: Session, external_id: str, *, reconciliation_field: str, box: SecretBox) -> dict[str, int]:
    """Erase the person (see the module docstring) and queue them for the Platform's Privacy
    Service, their identities sealed with ``box``; returns counts of what was touched."""
    profile = get_profile(session, external_id)
    names = [value for value in (profile.external_id, profile.email) if value]  # never empty: the id is required
    key = profile.email if reconciliation_field == "email" else profile.external_id
    # Unlinked subscriptions whose user key still names the person carry personal data too.
    named = and_(Subscription.profile_id.is_(None), Subscription.user_key == key) if key else None
    owned = Subscription.profile_id == profile.id
    theirs = session.execute(
        select(Subscription.id, Subscription.app_id, Subscription.token, Subscription.ecid).where(
            or_(owned, named) if named is not None else owned
        )
    ).all()
    subscription_ids = [row.id for row in theirs]
    ecids = sorted({row.ecid for row in theirs if row.ecid})
    sealed = box.seal({"external_id": profile.external_id, "email": profile.email, "ecids": ecids})
    session.add(PrivacyRequest(identities=sealed))
    their_messages = or_(BroadLog.profile_id == profile.id, BroadLog.subscription_id.in_(subscription_ids))
    counts = {
        "trackinglogs": _rowcount(
            session.execute(
                update(TrackingLog)
                .where(
                    or_(
                        TrackingLog.profile_id == profile.id,
                        TrackingLog.broadlog_id.in_(select(BroadLog.id).where(their_messages)),
                    )
                )
                .values(profile_id=None, ecid=None)
            )
        ),
        "broadlogs": _rowcount(
            session.execute(
                update(BroadLog).where(their_messages).values(profile_id=None, subscription_id=None, address=None)
            )
        ),
        "quarantine": _forget_tokens(session, [(row.app_id, row.token) for row in theirs]),
        "identities": _forget_ecids(session, [(row.app_id, row.ecid) for row in theirs if row.ecid]),
        "subscriptions": _rowcount(session.execute(delete(Subscription).where(Subscription.id.in_(subscription_ids)))),
        "audiences": _rowcount(session.execute(delete(AudienceMember).where(AudienceMember.profile_id == profile.id))),
        "delivery_targets": _forget_in_targets(session, profile.external_id),
        "sync_rejects": _forget_rejects(session, names),
        "lookup_rows": _forget_lookup_rows(session, names),
        "sync_details": _scrub_details(session, names),
    }
    profile_id = profile.id
    session.delete(profile)
    session.flush()
    log.info("profile %s erased: %s", profile_id, ", ".join(f"{v} {k}" for k, v in counts.items()))
    return counts


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def _forget_tokens(session: Session, tokens: Sequence[tuple[int, str]]) -> int:
    if not tokens:
        return 0
    return _rowcount(session.execute(delete(Address).where(tuple_(Address.app_id, Address.address).in_(tokens))))


def _forget_ecids(session: Session, ecids: Sequence[tuple[int, str]]) -> int:
    """The Standard identity rows of these (app, ECID) pairs: the app's registration, and the
    token its org holds for the ECID."""
    if not ecids:
        return 0
    removed = _rowcount(
        session.execute(
            delete(StandardRegistration).where(
                tuple_(StandardRegistration.app_id, StandardRegistration.ecid).in_(ecids)
            )
        )
    )
    orgs = dict(
        session.execute(select(App.id, App.experience_cloud_org).where(App.id.in_({a for a, _ in ecids}))).all()
    )
    pairs = [(orgs[app_id], ecid) for app_id, ecid in ecids if orgs.get(app_id)]
    if pairs:
        removed += _rowcount(
            session.execute(delete(PushIdentity).where(tuple_(PushIdentity.org_id, PushIdentity.ecid).in_(pairs)))
        )
    return removed


def _forget_in_targets(session: Session, external_id: str) -> int:
    """Remove the external id from deliveries that targeted it by name (the delivery and its
    counts stay)."""
    changed = 0
    for delivery in session.scalars(select(Delivery).where(cast(Delivery.target, Text).contains(external_id))):
        listed = delivery.target.get("profiles")
        if isinstance(listed, list) and external_id in listed:
            delivery.target = {**delivery.target, "profiles": [p for p in listed if p != external_id]}
            changed += 1
    return changed


def _forget_rejects(session: Session, names: Sequence[str]) -> int:
    quoting = [SyncReject.reason.contains(name, autoescape=True) for name in names]
    return _rowcount(session.execute(delete(SyncReject).where(or_(SyncReject.identity.in_(names), *quoting))))


def _forget_lookup_rows(session: Session, names: Sequence[str]) -> int:
    """Personalisation rows keyed by the person, or holding their external id or e-mail."""
    holding = [cast(LookupRow.fields, Text).contains(name, autoescape=True) for name in names]
    return _rowcount(session.execute(delete(LookupRow).where(or_(LookupRow.key.in_(names), *holding))))


def _scrub_details(session: Session, names: Sequence[str]) -> int:
    """Replace every text naming the person inside the JSON details of sync files and runs (the
    examples of refused lines)."""
    changed = 0
    for model, column in ((SyncFile, "details"), (SyncRun, "summary")):
        attribute = getattr(model, column)
        mentions = or_(*[cast(attribute, Text).contains(name, autoescape=True) for name in names])
        for row in session.scalars(select(model).where(mentions)):
            setattr(row, column, _scrubbed(getattr(row, column), names))
            changed += 1
    return changed


def _scrubbed(value: Any, names: Sequence[str]) -> Any:
    if isinstance(value, str):
        return ERASED if any(name in value for name in names) else value
    if isinstance(value, list):
        return [_scrubbed(item, names) for item in value]
    if isinstance(value, dict):
        return {key: _scrubbed(item, names) for key, item in value.items()}
    return value
