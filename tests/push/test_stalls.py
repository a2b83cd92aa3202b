"""A delivery whose platform cannot make progress (the app's credentials missing, undecryptable or
refused) says why in its error while it retries, is listed by /readyz and counted in /metrics, goes
on once the credentials work, and fails when it ends with nothing sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from core.secrets import SecretBox
from gateway.worker import engine_settings
from push import stalls
from push.engine import Engine
from push.providers.base import ErrorKind, PushError, PushMessage, SendResult
from push.providers.pool import UNDECRYPTABLE, ProviderPool
from store.models import AppPlatform, Subscription
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.push.test_engine import create, drive
from tests.values import apns_token, fcm_token

INVALID_TOKEN = PushError(ErrorKind.AUTH, "InvalidProviderToken", 403, message="the JWT is not valid")
THIRD_PARTY = PushError(ErrorKind.AUTH, "THIRD_PARTY_AUTH_ERROR", 401)
BAD_TOKEN = PushError(ErrorKind.TOKEN_INVALID, "BadDeviceToken", 400)
APNS_REFUSED = "APNs refused the app's credentials (403 InvalidProviderToken)"


def test_a_platform_is_stalled_when_its_batch_sent_nothing_and_credentials_were_refused() -> None:
    assert stalls.verdicts([("ios", INVALID_TOKEN), ("ios", INVALID_TOKEN), ("android", None)]) == {
        "ios": APNS_REFUSED,
        "android": None,
    }
    assert stalls.verdicts([("ios", INVALID_TOKEN), ("ios", None)]) == {"ios": None}  # one went: progress
    assert stalls.verdicts([("ios", BAD_TOKEN), ("android", PushError(ErrorKind.THROTTLED, "QUOTA_EXCEEDED"))]) == {}
    assert stalls.verdicts([("ios", BAD_TOKEN), ("ios", INVALID_TOKEN)]) == {"ios": APNS_REFUSED}


def test_the_reason_is_in_pushgates_words_never_the_providers_text() -> None:
    assert stalls.reason("android", THIRD_PARTY) == "FCM refused the app's credentials (401 THIRD_PARTY_AUTH_ERROR)"
    grant = PushError(ErrorKind.AUTH, "invalid_grant", message="Invalid JWT Signature. (secret details)")
    assert stalls.reason("android", grant) == (
        "the OAuth token endpoint refused the app's FCM service account (invalid_grant)"
    )
    odd = PushError(ErrorKind.AUTH, "<script>alert(1)</script>", 403)
    assert stalls.reason("ios", odd) == "APNs refused the app's credentials (403 unknown reason)"
    assert stalls.code(odd) == "other" and stalls.code(THIRD_PARTY) == "THIRD_PARTY_AUTH_ERROR"
    missing = PushError(ErrorKind.AUTH, "MissingCredentials", message="the app has no APNs credentials; add them")
    assert stalls.reason("ios", missing) == "the app has no APNs credentials; add them"


def test_credentials_sealed_with_another_key_are_an_auth_error_saying_so(app: Flask) -> None:
    ids = make_app(app)
    rt = runtime_of(app)
    with rt.sessions() as session:
        part = session.scalars(
            select(AppPlatform).where(AppPlatform.app_id == ids["id"], AppPlatform.platform == "ios")
        ).one()
        session.expunge(part)
    pool = ProviderPool(rt.settings, SecretBox(Fernet.generate_key()))
    provider = pool(part)
    (result,) = asyncio.run(provider.send([PushMessage(key=7, token=apns_token("x"), payload={})]))
    assert result.error is not None and result.error.kind is ErrorKind.AUTH
    assert result.error.reason == UNDECRYPTABLE
    assert stalls.reason("ios", result.error) == (
        "the app's APNs credentials cannot be decrypted with PUSHGATE_SECRET_KEY; give them again"
    )


class Switchable:
    """A provider that refuses every message with ``refusal`` while it is set, else sends it."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.refusal: PushError | None = None

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        if self.refusal is not None:
            return [SendResult(m.key, error=self.refusal) for m in messages]
        return [SendResult(m.key, provider_message_id=f"pm-{m.key}") for m in messages]

    async def close(self) -> None:
        return None


@pytest.fixture
def stalled_world(app: Flask) -> dict[str, Any]:
    ids = make_app(app)
    rt = runtime_of(app)
    now = utcnow()
    tokens = [("ios", apns_token(f"stall-{n}")) for n in range(3)] + [
        ("android", fcm_token(f"stall-{n}")) for n in range(3)
    ]
    with rt.sessions.begin() as session:
        session.execute(
            insert(Subscription),
            [
                {
                    "app_id": ids["id"],
                    "platform": platform,
                    "token": token,
                    "sdk": "campaign-classic",
                    "push_provider": "apns" if platform == "ios" else "fcm",
                    "additional_params": {},
                    "disabled": False,
                    "created_at": now,
                    "last_registered_at": now,
                }
                for platform, token in tokens
            ],
        )
    providers = {"ios": Switchable("ios"), "android": Switchable("android")}
    engine = Engine(rt.sessions, lambda part: providers[part.platform], engine_settings(rt))
    return {"ids": ids, "engine": engine, "providers": providers}


def metric(client: FlaskClient, prefix: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def send_once(engine: Engine, delivery_id: int) -> None:
    engine.start_due()
    while asyncio.run(engine.run_batch(delivery_id, channel=None)):
        pass


def test_a_refused_platform_shows_in_the_error_readyz_and_metrics_and_clears_once_fixed(
    client: FlaskClient, keys: Any, stalled_world: dict[str, Any]
) -> None:
    engine: Engine = stalled_world["engine"]
    stalled_world["providers"]["ios"].refusal = INVALID_TOKEN
    app_id = str(stalled_world["ids"]["id"])
    refused = f'pushgate_provider_auth_failures_total{{app="{app_id}",provider="apns",reason="InvalidProviderToken"}}'
    before = metric(client, refused)
    delivery = create(client, keys, stalled_world["ids"]["id"])
    send_once(engine, delivery["id"])
    body = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json
    assert body["status"] == "running" and body["counts"]["sent"] == 3 and body["counts"]["pending"] == 3
    assert body["error"].startswith(f"ios messages cannot be sent: {APNS_REFUSED}, since ")
    assert body["error"].endswith("; they are retried until their attempts run out or the delivery expires")
    assert metric(client, refused) == before + 3
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "degraded" and ready.json["database"] == "ok"
    assert ready.json["deliveries"].startswith("1 running delivery cannot send to a platform")
    (stall,) = ready.json["stalled"]
    assert (stall["delivery_id"], stall["platform"], stall["reason"]) == (delivery["id"], "ios", APNS_REFUSED)
    assert engine.stalled() == 1
    stalled_world["providers"]["ios"].refusal = None  # an admin gave the app a key APNs accepts
    drive(engine, delivery["id"])
    body = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json
    assert (body["status"], body["error"], body["counts"]["sent"]) == ("completed", None, 6)
    assert client.get("/readyz").json == {"status": "ok", "database": "ok", "deliveries": "ok", "stalled": []}
    assert engine.stalled() == 0


def test_a_delivery_refused_until_its_messages_give_up_fails_with_the_reason(
    client: FlaskClient, keys: Any, stalled_world: dict[str, Any]
) -> None:
    for provider in stalled_world["providers"].values():
        provider.refusal = THIRD_PARTY if provider.platform == "android" else INVALID_TOKEN
    delivery = create(client, keys, stalled_world["ids"]["id"])
    drive(stalled_world["engine"], delivery["id"])
    body = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json
    assert body["status"] == "failed" and body["ended_at"] is not None
    assert body["error"] == (
        "no message could be sent: android: FCM refused the app's credentials (401 THIRD_PARTY_AUTH_ERROR); "
        f"ios: {APNS_REFUSED}"
    )
    assert body["counts"]["failed"] == 6
    logs = client.get(f"/api/v1/deliveries/{delivery['id']}/broadlogs", headers=keys.viewer).json["items"]
    assert {(row["failure_type"], row["failure_reason"]) for row in logs} == {("soft", "refused")}
    assert client.get("/readyz").json["status"] == "ok"  # a failed delivery is over, not stalled


def test_a_platform_without_credentials_stalls_at_its_first_batch(
    app: Flask, client: FlaskClient, keys: Any, stalled_world: dict[str, Any]
) -> None:
    rt = runtime_of(app)
    with rt.sessions.begin() as session:
        part = session.scalars(select(AppPlatform).where(AppPlatform.platform == "android")).one()
        part.credentials, part.credential_kind = None, None
    engine = Engine(rt.sessions, ProviderPool(rt.settings, rt.box), engine_settings(rt))
    android_only = create(client, keys, stalled_world["ids"]["id"], platforms=["android"])
    send_once(engine, android_only["id"])
    body = client.get(f"/api/v1/deliveries/{android_only['id']}", headers=keys.viewer).json
    assert body["status"] == "running"
    assert body["error"].startswith(
        "android messages cannot be sent: the app has no FCM credentials; add them to the app, since "
    )
    logs = client.get(f"/api/v1/deliveries/{android_only['id']}/broadlogs", headers=keys.viewer).json["items"]
    assert {row["status"] for row in logs} == {"pending"}
    assert all(json.dumps(row["error_message"]).count("no FCM credentials") == 1 for row in logs)
