"""Delivery analysis: one broadLog row per target subscription, written in one set-based statement.

The target (all subscriptions of the app, given profiles, an audience, or given subscriptions) is
turned into a SELECT over subscriptions; ``INSERT ... SELECT`` writes the broadLog rows without
loading subscriptions into memory, so analysing 100,000 targets costs what analysing 1,000 does.
Each row is Pending, or Ignored with Campaign's reason:

- the subscription is disabled, or its token is in quarantine -> In quarantine (9)
- the token is denylisted, or the profile's push consent is ``n`` -> Denylisted (8)

Campaign also writes Double (10) for a token targeted twice; here a target is de-duplicated by
subscription and a token is unique per app, so a delivery (one app) never meets the same token twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, case, exists, func, insert, literal, not_, or_, select
from sqlalchemy.orm import Session

from core.errors import BadRequest
from domain.quarantine import release_reregistered
from store.clock import stamp
from store.codes import BroadLogStatus, Channel, FailureReason, FailureType
from store.models import Address, App, Audience, AudienceMember, BroadLog, Delivery, Profile, Subscription


def target_query(delivery: Delivery) -> Select[Any]:
    """The target subscriptions' ids (with repeats, when the target names one twice)."""
    target = delivery.target
    stmt = select(Subscription.id.label("subscription_id")).where(
        Subscription.app_id == delivery.app_id, Subscription.platform.in_(delivery.platforms)
    )
    if "profiles" in target:
        profiles = select(Profile.id).where(Profile.external_id.in_(target["profiles"]))
        return stmt.where(Subscription.profile_id.in_(profiles))
    if "audience" in target:
        members = select(AudienceMember.profile_id).where(
            AudienceMember.audience_id == target["audience"], AudienceMember.status != "exited"
        )
        return stmt.where(Subscription.profile_id.in_(members))
    if "subscriptions" in target:
        return stmt.where(Subscription.id.in_(target["subscriptions"]))
    return stmt


def analyse(session: Session, delivery: Delivery) -> int:
    """Write the delivery's broadLog rows; returns how many. Run once, when the delivery starts."""
    release_reregistered(session, app_id=delivery.app_id)
    targets = target_query(delivery).distinct().subquery()
    quarantined = exists().where(
        Address.app_id == Subscription.app_id,
        Address.address == Subscription.token,
        Address.status == "quarantine",
    )
    denylisted = exists().where(
        Address.app_id == Subscription.app_id,
        Address.address == Subscription.token,
        Address.status == "denylisted",
    )
    reason = case(
        (or_(Subscription.disabled.is_(True), quarantined), literal(int(FailureReason.IN_QUARANTINE))),
        (or_(denylisted, Profile.push_consent == "n"), literal(int(FailureReason.DENYLISTED))),
        else_=literal(None),
    )
    now = stamp(session)  # the Ignored rows' event_date is read by the export in commit order
    rows = (
        select(
            Subscription.id.label("subscription_id"),
            Subscription.profile_id,
            Subscription.token,
            case((Subscription.platform == "ios", int(Channel.IOS)), else_=int(Channel.ANDROID)).label("channel"),
            reason.label("failure_reason"),
        )
        .join(targets, targets.c.subscription_id == Subscription.id)
        .outerjoin(Profile, Profile.id == Subscription.profile_id)
        .subquery()
    )
    ignored = rows.c.failure_reason.is_not(None)
    source = select(
        literal(delivery.id),
        rows.c.subscription_id,
        rows.c.profile_id,
        rows.c.channel,
        rows.c.token,
        case((ignored, int(BroadLogStatus.IGNORED)), else_=int(BroadLogStatus.PENDING)),
        case((ignored, int(FailureType.IGNORED)), else_=literal(None)),
        rows.c.failure_reason,
        literal(0),
        literal(False),
        literal(now, BroadLog.created_at.type),
        literal(now, BroadLog.event_date.type),
        literal(now, BroadLog.next_attempt_at.type),
    ).order_by(rows.c.subscription_id)
    result = session.execute(
        insert(BroadLog).from_select(
            [
                "delivery_id",
                "subscription_id",
                "profile_id",
                "channel",
                "address",
                "status",
                "failure_type",
                "failure_reason",
                "attempts",
                "resent_after_crash",
                "created_at",
                "event_date",
                "next_attempt_at",
            ],
            source,
        ),
        # psycopg 3 forgets an INSERT's rowcount once SQLAlchemy closes the cursor (-1 was logged
        # as the count of targeted messages on PostgreSQL): ask SQLAlchemy to keep it.
        execution_options={"preserve_rowcount": True},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def reach(session: Session, app_id: int, target: dict[str, Any], platforms: list[str]) -> dict[str, int]:
    """How many devices a delivery of ``app_id`` to ``target`` on ``platforms`` would send to if
    it were analysed now, per platform (every platform asked for is a key): the target
    subscriptions :func:`analyse` would write Pending, i.e. without the ones it writes Ignored
    (disabled or quarantined, denylisted, push consent ``n``). A quarantine that analysis would
    lift first (:func:`~domain.quarantine.release_reregistered`) does not count against a device.
    Nothing is written. An unknown app or audience, or a platform the app lacks, is a BadRequest.
    """
    app = session.get(App, app_id)
    if app is None:
        raise BadRequest(f"no app with id {app_id}", code="unknown_app")
    missing = sorted(set(platforms) - {part.platform for part in app.platforms})
    if missing:
        raise BadRequest(f"the app has no {', '.join(missing)} part", code="unknown_platform")
    if "audience" in target and session.get(Audience, target["audience"]) is None:
        raise BadRequest(f"no audience with id {target['audience']}", code="unknown_audience")
    probe = Delivery(app_id=app_id, target=target, platforms=sorted(set(platforms)))  # never added to the session
    targets = target_query(probe).distinct().subquery()
    token_is = (Address.app_id == Subscription.app_id, Address.address == Subscription.token)
    lifted = and_(Address.unregistered_at.is_not(None), Subscription.last_registered_at > Address.unregistered_at)
    quarantined = exists().where(*token_is, Address.status == "quarantine", not_(lifted))
    released_at_analysis = exists().where(*token_is, Address.status == "quarantine", lifted)
    denylisted = exists().where(*token_is, Address.status == "denylisted")
    ignored = or_(
        and_(Subscription.disabled.is_(True), not_(released_at_analysis)),
        quarantined,
        denylisted,
        func.coalesce(Profile.push_consent, "u") == "n",  # no profile: nothing refused
    )
    rows = session.execute(
        select(Subscription.platform, func.count())
        .join(targets, targets.c.subscription_id == Subscription.id)
        .outerjoin(Profile, Profile.id == Subscription.profile_id)
        .where(not_(ignored))
        .group_by(Subscription.platform)
    )
    found = {platform: int(count) for platform, count in rows}
    return {platform: found.get(platform, 0) for platform in sorted(set(platforms))}
