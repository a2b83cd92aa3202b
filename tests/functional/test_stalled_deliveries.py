"""A delivery the providers refuse for the app's credentials, end to end over HTTP: the real APNs and
FCM clients against the local emulators, which do not know the app's keys at first (APNs answers
403 InvalidProviderToken, FCM's token endpoint invalid_grant). The delivery's error says why while
it retries, /readyz is degraded and lists it, /metrics counts the refusals and the stalled delivery;
once the emulators know the keys (an admin fixed them), it goes out and all of that clears."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask

from gateway.app import create_app
from gateway.cli import peers as runner
from gateway.worker import build_worker
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.functional.test_push_end_to_end import add_subscriptions
from tests.values import apns_token, fcm_token
from tests.waiting import wait_until

APNS_REFUSED = "ios messages cannot be sent: APNs refused the app's credentials (403 InvalidProviderToken)"
FCM_REFUSED = (
    "android messages cannot be sent: the OAuth token endpoint refused the app's FCM service account (invalid_grant)"
)


class Forgetful(runner.StoredCredentials):
    """The credentials stored in pushgate, which the emulators know only once ``known`` is set."""

    known = False

    def apns_key(self, key_id: str, team_id: str) -> ec.EllipticCurvePublicKey | None:
        return super().apns_key(key_id, team_id) if self.known else None

    def fcm_account(self, client_email: str) -> rsa.RSAPublicKey | None:
        return super().fcm_account(client_email) if self.known else None


@pytest.fixture
def forgetful(app: Flask, tmp_path: Path) -> Iterator[tuple[Forgetful, runner.RunningEmulators]]:
    rt = runtime_of(app)
    credentials = Forgetful(rt.sessions, rt.box)
    running = runner.start(credentials, tmp_path / "tls", slow_delay=1.0)
    yield credentials, running
    running.stop()


def sample(metrics: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix))


@pytest.mark.slow
def test_refused_credentials_show_in_the_error_readyz_and_metrics_until_fixed(
    app: Flask,
    keys: Any,
    live_server: str,
    settings_overrides: dict[str, Any],
    forgetful: tuple[Forgetful, runner.RunningEmulators],
) -> None:
    credentials, emulators = forgetful
    ids = make_app(app, token_uri=emulators.fcm.token_url)
    tokens = [("ios", apns_token(f"stall-{n}")) for n in range(2)] + [
        ("android", fcm_token(f"stall-{n}")) for n in range(2)
    ]
    add_subscriptions(app, ids["id"], tokens)
    env = emulators.environment()
    pointed = {
        **settings_overrides,
        "apns_endpoint": env["PUSHGATE_APNS_ENDPOINT"],
        "fcm_endpoint": env["PUSHGATE_FCM_ENDPOINT"],
        "ca_bundle": Path(env["PUSHGATE_CA_BUNDLE"]),
        "provider_timeout": 2.0,
        "worker_lease_seconds": 4.0,
    }
    sender = runtime_of(create_app(overrides=pointed))
    worker = build_worker(sender)
    with httpx.Client(base_url=live_server, timeout=10) as http:
        body = {"app_id": ids["id"], "name": "refused", "target": {"all": True}, "message": {"title": "t", "body": "b"}}
        delivery = http.post("/api/v1/deliveries", json=body, headers=keys.marketer).json()

        def current() -> dict[str, Any]:
            found: dict[str, Any] = http.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json()
            return found

        worker.start()
        try:
            stalled = wait_until(
                lambda: (d := current())["error"] and APNS_REFUSED in d["error"] and FCM_REFUSED in d["error"] and d,
                60,
                interval=0.2,
                message="the delivery's error did not name both refusals",
            )
            assert stalled["status"] == "running" and stalled["counts"]["sent"] == 0
            ready = http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert {(s["delivery_id"], s["platform"]) for s in ready.json()["stalled"]} == {
                (delivery["id"], "ios"),
                (delivery["id"], "android"),
            }
            metrics = http.get("/metrics").text
            app_label = f'app="{ids["id"]}"'
            apns = f'pushgate_provider_auth_failures_total{{{app_label},provider="apns",reason="InvalidProviderToken"}}'
            fcm = f'pushgate_provider_auth_failures_total{{{app_label},provider="fcm",reason="invalid_grant"}}'
            assert sample(metrics, apns) >= 2 and sample(metrics, fcm) >= 2, metrics
            wait_until(
                lambda: sample(http.get("/metrics").text, "pushgate_deliveries_stalled ") == 1,
                30,
                interval=0.5,
                message="the stalled-deliveries gauge did not count the delivery",
            )
            credentials.known = True  # the emulators now accept the app's keys, as APNs would a fixed key
            done = wait_until(
                lambda: (d := current())["status"] == "completed" and d,
                60,
                interval=0.2,
                message="the delivery did not complete once its credentials were accepted",
            )
        finally:
            worker.stop()
            sender.engine.dispose()
        assert done["error"] is None and done["counts"]["sent"] == 4
        assert http.get("/readyz").json() == {"status": "ok", "database": "ok", "deliveries": "ok", "stalled": []}
    accepted = {r["token"] for r in emulators.inbox.items() if r["status"] == 200}
    assert accepted == {token for _, token in tokens}
