"""Campaign Standard's two-part registration: which app an ECID uses, and which token it has.

The Standard extension tells Campaign the app (``mobileAppV5/{pkey}/subscriptions/{ecid}``) but
sends the push token to the ECID service (``/id``, data provider 20919 on Android, 20920 on iOS),
in either order and on different schedules. Each half is stored as it arrives; once both are known
for an app the subscription exists, keyed by the ECID so a rotated token replaces the old one.

Everything ``/id`` reads, writes or deletes stays inside the org it names (``d_orgid``): the org id
is as public as the app (it ships in its configuration), so one org's calls must never change
another org's subscriptions, even for the same ECID.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from domain.fields import lookup_key
from domain.subscriptions import Registration, normalise_token, register
from store.models import App, PushIdentity, StandardRegistration, Subscription
from store.types import utcnow
from store.upsert import upsert

SDK = "campaign-standard"
PUSH_DPIDS = {"20919": "android", "20920": "ios"}
PLATFORMS = {"gcm": "android", "fcm": "android", "apns": "ios"}


def record_registration(session: Session, *, app_id: int, ecid: str, push_platform: str) -> int:
    """Store the mobileAppV5 half; returns how many subscriptions it completed or refreshed."""
    now = utcnow()
    upsert(
        session,
        StandardRegistration,
        {
            "app_id": app_id,
            "ecid": ecid,
            "push_platform": push_platform,
            "fields": {},
            "created_at": now,
            "last_registered_at": now,
        },
        conflict=("app_id", "ecid"),
        update=("push_platform", "last_registered_at"),
    )
    org_id = session.scalar(select(App.experience_cloud_org).where(App.id == app_id))
    identity = session.get(PushIdentity, (org_id, ecid)) if org_id is not None else None
    if identity is None:
        return 0
    _link(session, app_id=app_id, ecid=ecid, platform=PLATFORMS[push_platform], token=identity.token)
    return 1


def record_push_token(session: Session, *, ecid: str, org_id: str, dpid: str, token: str) -> int:
    """Store the ``/id`` half for the apps of ``org_id``; an empty token (``null`` on Android)
    removes the ECID's subscriptions in those apps.

    Returns how many subscriptions were completed, refreshed or removed.
    """
    platform = PUSH_DPIDS[dpid]
    if token in ("", "null"):
        session.execute(delete(PushIdentity).where(PushIdentity.org_id == org_id, PushIdentity.ecid == ecid))
        org_apps = select(App.id).where(App.experience_cloud_org == org_id)
        result = session.execute(
            delete(Subscription).where(
                Subscription.ecid == ecid, Subscription.sdk == SDK, Subscription.app_id.in_(org_apps)
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
    token = normalise_token(platform, token)
    upsert(
        session,
        PushIdentity,
        {"ecid": ecid, "org_id": org_id, "token": token, "created_at": utcnow(), "updated_at": utcnow()},
        conflict=("org_id", "ecid"),
        update=("token", "updated_at"),
    )
    registrations = session.execute(
        select(StandardRegistration.app_id, StandardRegistration.push_platform)
        .join(App, App.id == StandardRegistration.app_id)
        .where(StandardRegistration.ecid == ecid, App.experience_cloud_org == org_id)
    ).all()
    linked = 0
    for app_id, push_platform in registrations:
        if PLATFORMS[push_platform] == platform:
            _link(session, app_id=app_id, ecid=ecid, platform=platform, token=token)
            linked += 1
    return linked


def org_is_known(session: Session, org_id: str) -> bool:
    if lookup_key(org_id) is None:
        return False
    return session.scalar(select(App.id).where(App.experience_cloud_org == org_id).limit(1)) is not None


def _link(session: Session, *, app_id: int, ecid: str, platform: str, token: str) -> None:
    # A new token for the same ECID means the old one was rotated away: drop the stale row first.
    session.execute(
        delete(Subscription).where(
            Subscription.app_id == app_id,
            Subscription.ecid == ecid,
            Subscription.sdk == SDK,
            Subscription.token != token,
        )
    )
    register(
        session,
        Registration(
            app_id=app_id,
            platform=platform,
            token=token,
            sdk=SDK,
            push_provider="fcm" if platform == "android" else "apns",
            ecid=ecid,
        ),
        reconciliation_field="external_id",
    )
