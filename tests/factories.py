"""Test data: apps with real-looking credentials and identifiers (:mod:`tests.values`), profiles,
subscriptions, inserted directly."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from push.peers.fcm import new_service_account
from store.models import App, AppPlatform, Profile
from tests.conftest import runtime_of
from tests.values import ANDROID_KEY, BUNDLE_ID, EDGE_CONFIG, FCM_TOKEN, IOS_KEY, ORG, PACKAGE, PKEY


def apns_key_p8() -> str:
    """A fresh ES256 private key in the .p8 (PKCS#8 PEM) form Apple hands out."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account(
    project_id: str = "demo-project", token_uri: str = "https://oauth2.googleapis.com/token"
) -> dict[str, Any]:
    """A Firebase service-account JSON object with a real RSA key (the FCM emulator's own maker)."""
    return new_service_account(project_id, token_uri)


def identifiers(suffix: str = "") -> dict[str, str]:
    """The public identifiers ``make_app(suffix=suffix)`` gives its app: those of :mod:`tests.values`
    without a suffix; with one, other values of the same real forms, distinct for each suffix: UUIDs
    derived from it, a pkey whose tail is derived from it, store ids ending in its letters and digits."""
    if not suffix:
        return {
            "ios_key": IOS_KEY,
            "android_key": ANDROID_KEY,
            "pkey": PKEY,
            "edge_config": EDGE_CONFIG,
            "bundle_id": BUNDLE_ID,
            "package": PACKAGE,
        }
    tail = base64.urlsafe_b64encode(hashlib.sha256(suffix.encode()).digest()).decode()[:22]
    label = re.sub(r"[^A-Za-z0-9]", "", suffix) or hashlib.sha256(suffix.encode()).hexdigest()[:8]
    return {
        "ios_key": str(uuid.uuid5(uuid.UUID(IOS_KEY), suffix)),
        "android_key": str(uuid.uuid5(uuid.UUID(ANDROID_KEY), suffix)),
        "pkey": PKEY[: -len(tail)] + tail,
        "edge_config": str(uuid.uuid5(uuid.UUID(EDGE_CONFIG), suffix)),
        "bundle_id": BUNDLE_ID + label,
        "package": PACKAGE + label,
    }


def make_app(
    application: Flask,
    name: str = "Shop",
    suffix: str = "",
    token_uri: str = "https://oauth2.googleapis.com/token",
    org: str = ORG,
) -> dict[str, Any]:
    """Insert an app of Experience Cloud org ``org`` with both platforms; returns its id and
    :func:`identifiers`."""
    rt = runtime_of(application)
    ids = identifiers(suffix)
    with rt.sessions.begin() as session:
        app = App(
            name=name + suffix,
            campaign_standard_pkey=ids["pkey"],
            edge_config_id=ids["edge_config"],
            experience_cloud_org=org,
        )
        app.platforms = [
            AppPlatform(
                platform="ios",
                integration_key=ids["ios_key"],
                app_identifier=ids["bundle_id"],
                credential_kind="apns_token",
                apns_environment="sandbox",
                credentials=rt.box.seal({"key_p8": apns_key_p8(), "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ"}),
            ),
            AppPlatform(
                platform="android",
                integration_key=ids["android_key"],
                app_identifier=ids["package"],
                credential_kind="fcm_service_account",
                credentials=rt.box.seal({"service_account": json.dumps(service_account(token_uri=token_uri))}),
            ),
        ]
        session.add(app)
        session.flush()
        return {"id": app.id, **ids}


def make_profile(application: Flask, external_id: str, **fields: Any) -> int:
    with runtime_of(application).sessions.begin() as session:
        profile = Profile(external_id=external_id, **fields)
        session.add(profile)
        session.flush()
        return profile.id


def make_sent_message(
    application: Flask,
    app_id: int,
    subscription_id: int | None = None,
    provider_message_id: str | None = None,
    status: int = 1,
    signed_tracking: bool = True,
) -> tuple[int, int]:
    """Insert a delivery with one broadLog row (Sent by default) to the subscription's token on its
    channel (an Android token without a subscription); returns (broadlog id, delivery id)."""
    from store.models import BroadLog, Delivery, Subscription

    with runtime_of(application).sessions.begin() as session:
        subscription = None if subscription_id is None else session.get(Subscription, subscription_id)
        delivery = Delivery(
            app_id=app_id,
            name="test",
            message={"title": "hi"},
            target={"all": True},
            platforms=["ios", "android"],
            status="running",
            signed_tracking=signed_tracking,
        )
        session.add(delivery)
        session.flush()
        broadlog = BroadLog(
            delivery_id=delivery.id,
            subscription_id=subscription_id,
            channel=41 if subscription is not None and subscription.platform == "ios" else 42,
            address=FCM_TOKEN if subscription is None else subscription.token,
            status=status,
            provider_message_id=provider_message_id,
        )
        session.add(broadlog)
        session.flush()
        return broadlog.id, delivery.id


def tracking_rows(application: Flask) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from store.models import TrackingLog

    with runtime_of(application).sessions() as session:
        return [
            {
                "broadlog_id": t.broadlog_id,
                "delivery_id": t.delivery_id,
                "interaction": t.interaction,
                "source": t.source,
                "tag": t.tag,
                "action_id": t.action_id,
                "ecid": t.ecid,
            }
            for t in session.scalars(select(TrackingLog).order_by(TrackingLog.id))
        ]


def push_ids(application: Flask, broadlog_id: int, delivery_id: int, sdk: str = "campaign-classic") -> tuple[str, str]:
    """``(_mId, _dId)`` as a push of the message to an app of the ``sdk`` family carries them,
    tracking signature included."""
    from domain.tracking import signature
    from push.payloads.keys import tracking_ids

    mac = signature(runtime_of(application).tracking_key, broadlog_id, delivery_id)
    return tracking_ids(broadlog_id, delivery_id, sdk, mac)
