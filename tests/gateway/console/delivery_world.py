"""Data of the console's deliveries view tests: an app, profiles in an audience, subscriptions of
which some a delivery leaves out (quarantined, disabled, no consent, exited the audience), test
devices, and the New delivery form's fields."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from store.models import Address, Audience, AudienceMember, Delivery, Subscription, TestDevice
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app, make_profile
from tests.gateway.console.conftest import ConsoleClient
from tests.values import apns_token, crm_id, fcm_token

Console = Callable[[str], ConsoleClient]


def add_subscription(
    app: Flask, app_id: int, platform: str, token: str, profile_id: int | None = None, *, disabled: bool = False
) -> int:
    with runtime_of(app).sessions.begin() as session:
        sub = Subscription(
            app_id=app_id,
            platform=platform,
            token=token,
            sdk="campaign-classic",
            push_provider="apns" if platform == "ios" else "fcm",
            profile_id=profile_id,
            additional_params={},
            disabled=disabled,
        )
        session.add(sub)
        session.flush()
        return sub.id


def quarantine(app: Flask, app_id: int, platform: str, token: str) -> None:
    """As domain.quarantine leaves a token after a hard error: quarantined, its subscription disabled."""
    with runtime_of(app).sessions.begin() as session:
        session.add(Address(app_id=app_id, platform=platform, address=token, status="quarantine", error_count=1))
        for sub in session.scalars(select(Subscription).where(Subscription.token == token)):
            sub.disabled = True


def make_audience(app: Flask, name: str, profile_ids: list[int], exited: tuple[int, ...] = ()) -> int:
    with runtime_of(app).sessions.begin() as session:
        audience = Audience(name=name, segment_id=f"seg-{name}")
        session.add(audience)
        session.flush()
        for pid in profile_ids:
            status = "exited" if pid in exited else "realized"
            session.add(AudienceMember(audience_id=audience.id, profile_id=pid, status=status))
        return audience.id


def add_test_device(app: Flask, app_id: int, subscription_id: int, label: str) -> int:
    with runtime_of(app).sessions.begin() as session:
        device = TestDevice(app_id=app_id, subscription_id=subscription_id, label=label, created_at=utcnow())
        session.add(device)
        session.flush()
        return device.id


def deliveries_of(app: Flask) -> list[dict[str, Any]]:
    with runtime_of(app).sessions() as session:
        return [
            {
                "id": d.id,
                "name": d.name,
                "target": d.target,
                "platforms": d.platforms,
                "created_by": d.created_by,
                "proof": d.proof,
                "schedule_at": d.schedule_at,
                "message": d.message,
            }
            for d in session.scalars(select(Delivery).order_by(Delivery.id))
        ]


def build_world(app: Flask) -> dict[str, Any]:
    """An app with both platforms; Ada and Grace in the audience "Gold" (and Linus, who left it);
    subscriptions of each, some that a delivery leaves out."""
    ids = make_app(app)
    other = make_app(app, suffix="other")
    ada = make_profile(app, crm_id(1), first_name="Ada", push_consent="y")
    grace = make_profile(app, crm_id(2), first_name="Grace")
    linus = make_profile(app, crm_id(3), first_name="Linus")
    refuses = make_profile(app, crm_id(4), first_name="Nope", push_consent="n")
    subs = {
        "ada_ios": add_subscription(app, ids["id"], "ios", apns_token("ada"), ada),
        "ada_android": add_subscription(app, ids["id"], "android", fcm_token("ada"), ada),
        "grace_ios": add_subscription(app, ids["id"], "ios", apns_token("grace"), grace),
        "grace_android_quarantined": add_subscription(app, ids["id"], "android", fcm_token("grace"), grace),
        "grace_ios_disabled": add_subscription(app, ids["id"], "ios", apns_token("grace-2"), grace, disabled=True),
        "linus_ios": add_subscription(app, ids["id"], "ios", apns_token("linus"), linus),
        "refuses_android": add_subscription(app, ids["id"], "android", fcm_token("nope"), refuses),
        "other_app": add_subscription(app, other["id"], "ios", apns_token("other"), ada),
    }
    quarantine(app, ids["id"], "android", fcm_token("grace"))
    audience = make_audience(app, "Gold", [ada, grace, linus, refuses], exited=(linus,))
    return {"app": ids["id"], "other": other["id"], "audience": audience, "subs": subs}


def compose(world: dict[str, Any], **fields: Any) -> dict[str, Any]:
    form = {
        "name": "Spring sale",
        "app_id": str(world["app"]),
        "target": "audience",
        "audience_id": str(world["audience"]),
        "platforms": ["ios", "android"],
        "title": "Hello {{ profile.first_name }}",
        "body": "Our spring sale starts today.",
    }
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def error_of(page: str, field: str) -> str:
    match = re.search(rf'<small id="e-{field}" class="error"[^>]*>([^<]*)</small>', page)
    assert match, f"no error slot for {field}"
    return html.unescape(match.group(1))
