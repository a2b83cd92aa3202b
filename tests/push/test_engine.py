"""The delivery engine against a scripted provider (a real Provider implementation that answers by
token prefix): analysis, statuses, Campaign failure codes, quarantine, retries, crash accounting."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from domain.analysis import analyse
from domain.subscriptions import Registration, register
from domain.tracking import signature
from gateway.worker import engine_settings
from push.engine import Engine
from push.providers.base import ErrorKind, PushError, PushMessage, SendResult
from store.models import BroadLog, Delivery, Profile, Subscription
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app, make_profile
from tests.values import crm_id, fcm_token

ANSWERS = {
    "gone": PushError(ErrorKind.TOKEN_GONE, "Unregistered", 410),
    "bad": PushError(ErrorKind.TOKEN_INVALID, "BadDeviceToken", 400),
    "mismatch": PushError(ErrorKind.TOKEN_MISMATCH, "SENDER_ID_MISMATCH", 403),
    "payload": PushError(ErrorKind.PAYLOAD_REJECTED, "INVALID_ARGUMENT", 400),
    "busy": PushError(ErrorKind.THROTTLED, "QUOTA_EXCEEDED", 429, retry_after=0),
}


ALICE = crm_id(4211)
BOB = crm_id(4212)


def scripted_token(name: str) -> str:
    """An FCM registration token of the real form (seeded by ``name``) behind ``name``'s first word
    and ``-``: the word the ScriptedProvider answers by (``gone-1`` gives ``gone-`` + a token)."""
    return fcm_token(name, prefix=name.split("-", maxsplit=1)[0] + "-")


#: The world's subscriptions by name (what each is for, at a glance): name -> token.
TOKENS = {
    name: scripted_token(name)
    for name in ("ok-1", "ok-2", "gone-1", "bad-1", "mismatch-1", "payload-1", "busy-1", "bobs-token", "off-1")
}


class ScriptedProvider:
    """Answers by the token's first word; ``busy`` tokens fail once, then succeed."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.sent: list[PushMessage] = []
        self.seen: set[str] = set()

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        results = []
        for message in messages:
            word = message.token.split("-")[0]
            error = ANSWERS.get(word)
            if word == "busy" and message.token in self.seen:
                error = None
            self.seen.add(message.token)
            if error is None:
                self.sent.append(message)
                results.append(SendResult(message.key, provider_message_id=f"pm-{message.key}"))
            else:
                results.append(SendResult(message.key, error=error))
        return results

    async def close(self) -> None:
        return None


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    ids = make_app(app)
    alice = make_profile(app, ALICE, first_name="Alice")
    make_profile(app, BOB, first_name="Bob", push_consent="n")
    rt = runtime_of(app)
    names = ["ok-1", "ok-2", "gone-1", "bad-1", "mismatch-1", "payload-1", "busy-1", "bobs-token"]
    with rt.sessions.begin() as session:
        for name in names:
            register(
                session,
                Registration(
                    app_id=ids["id"],
                    platform="android",
                    token=TOKENS[name],
                    sdk="campaign-classic",
                    push_provider="fcm",
                    user_key=BOB if name == "bobs-token" else ALICE,
                    sets_user_key=True,
                ),
                reconciliation_field="external_id",
            )
        register(
            session,
            Registration(
                app_id=ids["id"],
                platform="android",
                token=TOKENS["off-1"],
                sdk="edge",
                push_provider="fcm",
                disabled=True,
            ),
            reconciliation_field="external_id",
        )
    providers: dict[str, ScriptedProvider] = {}

    def provider_for(part: Any) -> ScriptedProvider:
        return providers.setdefault(part.platform, ScriptedProvider(part.platform))

    engine = Engine(rt.sessions, provider_for, engine_settings(rt))
    return {"ids": ids, "engine": engine, "providers": providers, "alice": alice, "rt": rt}


def drive(engine: Engine, delivery_id: int) -> None:
    """What the worker does, synchronously: start, send every batch, retry when due, finish."""
    engine.start_due()
    for _ in range(20):
        while asyncio.run(engine.run_batch(delivery_id)):
            pass
        if engine.finish_if_done(delivery_id):
            return
        with engine.sessions.begin() as session:  # make the scheduled retries due now
            session.execute(update(BroadLog).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    raise AssertionError("delivery did not finish")


def create(client: FlaskClient, keys: Any, app_id: int, **extra: Any) -> dict[str, Any]:
    body = {
        "app_id": app_id,
        "name": "Winter sale",
        "target": {"all": True},
        "message": {"title": "Hi {{ profile.first_name }}", "body": "50% off"},
        **extra,
    }
    response = client.post("/api/v1/deliveries", json=body, headers=keys.marketer)
    assert response.status_code in (200, 201), response.json
    return response.json


def test_delivery_outcomes_counts_and_quarantine(client: FlaskClient, keys: Any, world: dict[str, Any]) -> None:
    delivery = create(client, keys, world["ids"]["id"])
    drive(world["engine"], delivery["id"])
    body = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json
    assert body["status"] == "completed"
    assert body["counts"] | {} == {
        "targeted": 9,
        "pending": 0,
        "sent": 3,
        "failed": 4,
        "ignored": 2,
        "cancelled": 0,
        "received": 0,
        "opened": 0,
        "clicked": 0,
        "resent_after_crash": 0,
    }
    names = {token: name for name, token in TOKENS.items()}
    logs = {
        names[row["address"]]: row
        for row in client.get(f"/api/v1/deliveries/{delivery['id']}/broadlogs?limit=50", headers=keys.viewer).json[
            "items"
        ]
    }
    assert (logs["gone-1"]["status"], logs["gone-1"]["failure_type"], logs["gone-1"]["failure_reason"]) == (
        "failed",
        "hard",
        "user_unknown",
    )
    assert (logs["mismatch-1"]["failure_type"], logs["mismatch-1"]["failure_reason"]) == ("soft", "user_unknown")
    assert (logs["payload-1"]["failure_type"], logs["payload-1"]["failure_reason"]) == ("ignored", "refused")
    assert logs["busy-1"]["status"] == "sent" and logs["busy-1"]["attempts"] == 2
    assert (logs["off-1"]["status"], logs["off-1"]["failure_reason"]) == ("ignored", "in_quarantine")
    assert (logs["bobs-token"]["status"], logs["bobs-token"]["failure_reason"]) == ("ignored", "denylisted")
    assert logs["ok-1"]["provider_message_id"] == f"pm-{logs['ok-1']['id']}"
    sent = {names[m.token]: m for m in world["providers"]["android"].sent}
    assert sorted(sent) == ["busy-1", "ok-1", "ok-2"]
    data = sent["ok-1"].payload["data"]
    mac = signature(runtime_of(client.application).tracking_key, logs["ok-1"]["id"], delivery["id"])
    # Classic apps: the tracking signature rides on _dId, which their SDKs copy unchanged.
    assert data["_mId"] == str(logs["ok-1"]["id"]) and data["_dId"] == f"{delivery['id']:x}.{mac}"
    assert data["adb_title"] == "Hi Alice"
    quarantined = client.get("/api/v1/quarantine?status=quarantine", headers=keys.viewer).json["items"]
    assert sorted(names[q["address"]] for q in quarantined) == ["bad-1", "gone-1"]
    with world["rt"].sessions() as session:
        disabled = set(session.scalars(select(Subscription.token).where(Subscription.disabled.is_(True))))
    assert {names[token] for token in disabled} == {"bad-1", "gone-1", "off-1"}
    # A second delivery skips the quarantined tokens as Ignored / In quarantine.
    second = create(client, keys, world["ids"]["id"], name="Second")
    drive(world["engine"], second["id"])
    counts = client.get(f"/api/v1/deliveries/{second['id']}", headers=keys.viewer).json["counts"]
    assert counts["ignored"] == 4 and counts["targeted"] == 9


def test_in_flight_rows_after_a_crash_are_resent_and_counted(
    client: FlaskClient, keys: Any, world: dict[str, Any]
) -> None:
    engine: Engine = world["engine"]
    delivery = create(client, keys, world["ids"]["id"], target={"profiles": [ALICE]})
    engine.start_due()
    claimed = engine.claim(delivery["id"], 2)  # a worker took two rows, then died before recording
    assert len(claimed) == 2
    assert engine.claim(delivery["id"], 100) and not engine.claim(delivery["id"], 100)  # the rest, once
    with world["rt"].sessions.begin() as session:
        session.execute(
            update(BroadLog).where(BroadLog.id.in_(claimed)).values(lease_until=utcnow() - timedelta(seconds=1))
        )
        session.execute(update(BroadLog).where(BroadLog.id.not_in(claimed)).values(lease_until=None))
    drive(engine, delivery["id"])
    counts = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json["counts"]
    assert counts["resent_after_crash"] == 2 and counts["pending"] == 0


def test_idempotency_schedule_and_cancel(client: FlaskClient, keys: Any, world: dict[str, Any]) -> None:
    first = create(client, keys, world["ids"]["id"], idempotency_key="k-1")
    again = create(client, keys, world["ids"]["id"], idempotency_key="k-1")
    assert again["id"] == first["id"]
    later = create(client, keys, world["ids"]["id"], name="Later", schedule_at="2099-01-01T09:00:00Z")
    assert world["engine"].start_due() == [first["id"]]
    response = client.post(f"/api/v1/deliveries/{later['id']}/cancel", headers=keys.marketer)
    assert response.status_code == 200 and response.json["status"] == "cancelled"
    assert client.post(f"/api/v1/deliveries/{later['id']}/cancel", headers=keys.marketer).status_code == 409


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ({"title": "{{ profile.first_name "}, "title"),
        ({"title": "{{ ''.__class__ }}"}, "title"),
        ({"title": "x", "data": {"a": "x" * 2000, "b": "y" * 2000, "c": "z" * 500}}, "4096"),
        ({"title": "x", "data": {"k": 1}}, "data"),
    ],
)
def test_unsendable_messages_are_refused_at_creation(
    client: FlaskClient, keys: Any, world: dict[str, Any], message: dict[str, Any], fragment: str
) -> None:
    body = {"app_id": world["ids"]["id"], "name": "bad", "target": {"all": True}, "message": message}
    response = client.post("/api/v1/deliveries", json=body, headers=keys.marketer)
    assert response.status_code == 400, response.json
    assert fragment in response.json["message"]


def test_preview_renders_for_a_profile(client: FlaskClient, keys: Any, world: dict[str, Any]) -> None:
    body = {
        "app_id": world["ids"]["id"],
        "profile": ALICE,
        "message": {"title": "Hi {{ profile.first_name }}", "body": "b", "data": {"offer": "A1"}},
    }
    response = client.post("/api/v1/deliveries/preview", json=body, headers=keys.marketer)
    assert response.status_code == 200, response.json
    assert response.json["ios"]["rendered"]["title"] == "Hi Alice"
    assert response.json["ios"]["payload"]["aps"]["alert"]["title"] == "Hi Alice"
    assert response.json["android"]["payload"]["data"]["offer"] == "A1"
    assert 0 < response.json["ios"]["size"] <= 4096


def test_the_batch_loader_reads_every_column_templates_and_payloads_use() -> None:
    """Engine.load selects named columns only: a field added to the template context (or read by
    the builder) must be loaded too, or templates would silently see nothing."""
    from dataclasses import fields

    from domain.templates.sandbox import PROFILE_FIELDS, SUBSCRIPTION_FIELDS
    from store.queries.broadlog import LoadedProfile, LoadedSubscription

    loaded_subscription = {f.name for f in fields(LoadedSubscription)}
    assert set(SUBSCRIPTION_FIELDS) | {"additional_params", "token"} <= loaded_subscription
    assert set(PROFILE_FIELDS) | {"attributes"} <= {f.name for f in fields(LoadedProfile)}


def test_the_batch_loader_reads_what_the_models_hold(client: FlaskClient, keys: Any, world: dict[str, Any]) -> None:
    """Engine.load goes straight to the driver: every loaded value, JSON included, equals the
    model's; a subscription without a profile loads with none."""
    from dataclasses import asdict

    from store.queries.broadlog import LoadedProfile, LoadedSubscription

    engine: Engine = world["engine"]
    rt = world["rt"]
    with rt.sessions.begin() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.token == TOKENS["ok-1"])
            .values(additional_params={"tier": "gold", "n": 3}, device_name="Pixel", os_version="15")
        )
        alice = session.get(Profile, world["alice"])
        assert alice is not None
        alice.attributes = {"city": "Lyon", "points": [1, 2]}
        alice.locale, alice.timezone = "fr_FR", "Europe/Paris"
        register(
            session,
            Registration(
                app_id=world["ids"]["id"],
                platform="android",
                token=fcm_token("anon-1"),
                sdk="edge",
                push_provider="fcm",
            ),
            reconciliation_field="external_id",
        )
    delivery = create(client, keys, world["ids"]["id"], target={"all": True})
    engine.start_due()
    ids = engine.claim(delivery["id"], 100)
    _, rows = engine.load(delivery["id"], ids)

    assert sorted(r.broadlog_id for r in rows) == ids
    with rt.sessions() as session:
        for row in rows:
            broadlog = session.get(BroadLog, row.broadlog_id)
            assert broadlog is not None and broadlog.subscription_id is not None
            subscription = session.get(Subscription, broadlog.subscription_id)
            assert subscription is not None
            assert row.attempts == broadlog.attempts == 1
            assert asdict(row.subscription) == {f: getattr(subscription, f) for f in asdict(row.subscription)}, (
                subscription.token
            )
            assert isinstance(row.subscription, LoadedSubscription)
            if subscription.profile_id is None:
                assert row.profile is None
                continue
            profile = session.get(Profile, subscription.profile_id)
            assert isinstance(row.profile, LoadedProfile)
            assert asdict(row.profile) == {f: getattr(profile, f) for f in asdict(row.profile)}
    loaded = {r.subscription.token: r for r in rows}
    ok = loaded[TOKENS["ok-1"]]
    assert ok.subscription.additional_params == {"tier": "gold", "n": 3}
    assert ok.profile is not None
    assert ok.profile.attributes == {"city": "Lyon", "points": [1, 2]}
    assert any(r.profile is None for r in rows)  # an anonymous registration


def test_a_claim_can_take_one_platform_only(client: FlaskClient, keys: Any, world: dict[str, Any]) -> None:
    """The worker's loops start one platform each for a delivery to both: a claim for a channel
    takes only that channel's rows (this world's subscriptions are all Android, channel 42)."""
    engine: Engine = world["engine"]
    delivery = create(client, keys, world["ids"]["id"], target={"profiles": [ALICE]})
    engine.start_due()
    with world["rt"].sessions() as session:
        pending = set(
            session.scalars(select(BroadLog.id).where(BroadLog.delivery_id == delivery["id"], BroadLog.status == 6))
        )
    assert pending
    assert engine.claim(delivery["id"], 100, channel=41) == []  # no iOS rows: none taken
    assert set(engine.claim(delivery["id"], 100, channel=42)) == pending
    assert engine.claim(delivery["id"], 100) == []


def test_what_an_engine_keeps_per_delivery_goes_when_the_delivery_stops_running(
    client: FlaskClient, keys: Any, world: dict[str, Any]
) -> None:
    """Another worker may finish or cancel a delivery: this engine's builder and cached delivery
    for it are dropped at its next look at the running deliveries, not kept for ever."""
    engine: Engine = world["engine"]
    delivery = create(client, keys, world["ids"]["id"], target={"profiles": [ALICE]})
    engine.start_due()
    asyncio.run(engine.run_batch(delivery["id"], limit=1))
    assert delivery["id"] in engine._builders and delivery["id"] in engine._contexts
    assert engine.running() == [delivery["id"]]
    assert delivery["id"] in engine._builders  # still running: kept
    with world["rt"].sessions.begin() as session:  # finished elsewhere
        session.execute(update(Delivery).where(Delivery.id == delivery["id"]).values(status="completed"))
    assert engine.running() == []
    assert not engine._builders and not engine._contexts


def test_a_poll_starts_what_is_due_and_names_what_runs(client: FlaskClient, keys: Any, world: dict[str, Any]) -> None:
    """The worker's tick: due deliveries start, later ones wait, running ones are named; and what
    the engine keeps for a delivery goes once the delivery stops running, as with running()."""
    engine: Engine = world["engine"]
    assert engine.poll() == []
    now = create(client, keys, world["ids"]["id"], target={"profiles": [ALICE]})
    later = create(client, keys, world["ids"]["id"], name="Later", schedule_at="2099-01-01T09:00:00Z")
    assert engine.poll() == [now["id"]]
    assert engine.poll() == [now["id"]]  # nothing scheduled is due: one query, the same answer
    asyncio.run(engine.run_batch(now["id"], limit=1))
    assert now["id"] in engine._builders
    with world["rt"].sessions.begin() as session:
        session.execute(update(Delivery).where(Delivery.id == now["id"]).values(status="completed"))
        assert session.get(Delivery, later["id"]).status == "scheduled"  # type: ignore[union-attr]
    assert engine.poll() == [] and not engine._builders and not engine._contexts


def test_sent_rows_carry_their_provider_id_and_a_readable_event_date(
    client: FlaskClient, keys: Any, world: dict[str, Any]
) -> None:
    """Sent rows are written straight to the driver: the stamp must read back through the model
    as the same aware UTC instant (the Platform export's watermark is built on it)."""
    before = utcnow()
    delivery = create(client, keys, world["ids"]["id"], target={"profiles": [ALICE]})
    drive(world["engine"], delivery["id"])
    with world["rt"].sessions() as session:
        rows = session.execute(
            select(BroadLog.provider_message_id, BroadLog.event_date).where(
                BroadLog.delivery_id == delivery["id"], BroadLog.status == 1
            )
        ).all()
    assert rows
    for message_id, stamp in rows:
        assert message_id and stamp.tzinfo is not None and before <= stamp <= utcnow()


def test_starting_a_delivery_counts_every_broadlog_row_it_writes(
    client: FlaskClient, keys: Any, world: dict[str, Any]
) -> None:
    """The count logged when a delivery starts (psycopg 3 reported -1 for INSERT ... SELECT)."""
    delivery = create(client, keys, world["ids"]["id"])
    rt = world["rt"]
    with rt.sessions.begin() as session:
        row = session.get(Delivery, delivery["id"])
        assert row is not None
        written = analyse(session, row)
        assert written == session.scalar(select(func.count()).where(BroadLog.delivery_id == row.id)) == 9


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"name": "Winter sale (copy)"}, "name"),
        ({"message": {"title": "Another text"}}, "message"),
        ({"target": {"profiles": [crm_id(42)]}}, "target"),
        ({"platforms": ["ios"]}, "platforms"),
        ({"rate_per_second": 50}, "rate_per_second"),
        ({"validity_seconds": 3600}, "validity_seconds"),
        ({"schedule_at": "2099-01-01T09:00:00Z"}, "schedule_at"),
    ],
)
def test_reused_idempotency_key_with_another_body_is_a_conflict(
    client: FlaskClient, keys: Any, world: dict[str, Any], change: dict[str, Any], named: str
) -> None:
    body = {
        "app_id": world["ids"]["id"],
        "name": "Winter sale",
        "target": {"all": True},
        "message": {"title": "50% off until Sunday"},
        "idempotency_key": "winter-sale-2026",
    }
    first = client.post("/api/v1/deliveries", json=body, headers=keys.marketer)
    assert first.status_code == 201
    # The same body, in another order and with the defaults spelled out, is the same request.
    same = {**dict(reversed(body.items())), "validity_seconds": 86400, "platforms": ["ios", "android"]}
    replay = client.post("/api/v1/deliveries", json=same, headers=keys.marketer)
    assert replay.status_code == 200 and replay.json == first.json
    response = client.post("/api/v1/deliveries", json={**body, **change}, headers=keys.marketer)
    assert response.status_code == 409, response.json
    assert response.json["error"] == "idempotency_conflict"
    assert "'winter-sale-2026'" in response.json["message"] and f"different {named};" in response.json["message"]


class QuotaProvider:
    """FCM with the project's quota spent: every message answers 429 QUOTA_EXCEEDED."""

    platform = "android"

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        self.calls += 1
        error = PushError(ErrorKind.THROTTLED, "QUOTA_EXCEEDED", 429, retry_after=60.0)
        return [SendResult(message.key, error=error) for message in messages]

    async def close(self) -> None:
        return None


def test_a_spent_quota_pauses_the_platform_and_fails_no_message(
    client: FlaskClient, keys: Any, world: dict[str, Any]
) -> None:
    rt = world["rt"]
    quota = QuotaProvider()
    engine = Engine(rt.sessions, lambda part: quota, engine_settings(rt))
    delivery = create(client, keys, world["ids"]["id"], target={"profiles": [ALICE]})
    engine.start_due()
    with rt.sessions.begin() as session:  # every message on its last attempt already
        session.execute(update(BroadLog).values(attempts=engine.settings.max_attempts))

    handled = asyncio.run(engine.run_batch(delivery["id"], channel=42))

    assert handled == 7 and quota.calls == 1
    assert 59 < engine.pauses.left(delivery["id"], 42) <= 60
    assert engine.pauses.left(delivery["id"], 41) == 0
    # Paused: the next batches claim nothing and send nothing, though the rows are made due.
    with rt.sessions.begin() as session:
        session.execute(update(BroadLog).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    assert asyncio.run(engine.run_batch(delivery["id"], channel=42)) == 0 and quota.calls == 1
    with rt.sessions() as session:
        statuses = session.execute(select(BroadLog.status, func.count()).group_by(BroadLog.status)).all()
    assert [(int(status), count) for status, count in statuses if count] == [(6, 7)]  # all still Pending
    assert not engine.finish_if_done(delivery["id"])
