"""The engine's rules for what fails a message: credentials the provider refuses are sent again
while the delivery may still go out, then fail Soft / Refused; only an unsendable message becomes
a failed row, while a bug in the building code is raised, never written as a message's fate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flask.testing import FlaskClient

from domain.messages import Unsendable
from domain.subscriptions import Registration, register
from push.build import Builder
from push.providers.base import ErrorKind, PushError
from tests.push import test_engine
from tests.values import fcm_token

world = test_engine.world


def test_an_auth_error_is_retried_then_fails_refused(
    client: FlaskClient, keys: Any, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(test_engine.ANSWERS, "auth", PushError(ErrorKind.AUTH, "THIRD_PARTY_AUTH_ERROR", 401))
    with world["rt"].sessions.begin() as session:
        subscription_id, _ = register(
            session,
            Registration(
                app_id=world["ids"]["id"],
                platform="android",
                token="auth-" + fcm_token("auth"),
                sdk="campaign-classic",
                push_provider="fcm",
            ),
            reconciliation_field="external_id",
        )
    delivery = test_engine.create(client, keys, world["ids"]["id"], target={"subscriptions": [subscription_id]})
    test_engine.drive(world["engine"], delivery["id"])
    logs = client.get(f"/api/v1/deliveries/{delivery['id']}/broadlogs", headers=keys.viewer).json["items"]
    assert len(logs) == 1
    (log,) = logs
    assert log["status"] == "failed" and log["failure_type"] == "soft" and log["failure_reason"] == "refused", log
    assert log["attempts"] == world["engine"].settings.max_attempts > 1
    assert client.get("/api/v1/quarantine", headers=keys.viewer).json["items"] == []


@pytest.mark.parametrize("raised", [Unsendable("message.title: renders to nothing"), ValueError("bug in payload code")])
def test_only_an_unsendable_message_becomes_a_failed_row(
    client: FlaskClient, keys: Any, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, raised: Exception
) -> None:
    def build(*_args: Any, **_kwargs: Any) -> Any:
        raise raised

    monkeypatch.setattr(Builder, "build", build)
    delivery = test_engine.create(client, keys, world["ids"]["id"])
    engine = world["engine"]
    engine.start_due()
    if isinstance(raised, Unsendable):
        while asyncio.run(engine.run_batch(delivery["id"])):
            pass
        counts = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json["counts"]
        assert counts["failed"] == counts["targeted"] - counts["ignored"] > 0
    else:
        with pytest.raises(ValueError, match="bug in payload code"):
            asyncio.run(engine.run_batch(delivery["id"]))
        counts = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json["counts"]
        assert counts["failed"] == 0
