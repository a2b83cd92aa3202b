"""End to end against the local emulators: the real providers (aioapns, firebase-admin's credentials)
talking HTTP/2 + TLS to the APNs and FCM peers, driven by the in-process worker or by a gateway
process that is killed with SIGKILL mid-delivery and restarted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

from gateway.runtime import runtime
from gateway.worker import build_worker
from push.emulators import runner
from store.models import Subscription
from store.types import utcnow
from tests.conftest import TEST_SECRET
from tests.factories import make_app, make_profile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emulators(app: Flask, tmp_path: Path) -> Iterator[runner.RunningEmulators]:
    rt = runtime_of(app)
    running = runner.start(runner.StoredCredentials(rt.sessions, rt.box), tmp_path / "tls", slow_delay=1.0)
    yield running
    running.stop()


@pytest.fixture
def pointed(settings_overrides: dict[str, Any], emulators: runner.RunningEmulators) -> dict[str, Any]:
    """Settings for a gateway that sends to the emulators."""
    env = emulators.environment()
    return {
        **settings_overrides,
        "apns_endpoint": env["PUSHGATE_APNS_ENDPOINT"],
        "fcm_endpoint": env["PUSHGATE_FCM_ENDPOINT"],
        "ca_bundle": Path(env["PUSHGATE_CA_BUNDLE"]),
        "provider_timeout": 2.0,
        "worker_lease_seconds": 4.0,
    }


def runtime_of(app: Flask) -> Any:
    with app.app_context():
        return runtime()


def hex_token(prefix: str, n: int) -> str:
    return prefix + format(n, "x").rjust(64 - len(prefix), "0")


def add_subscriptions(app: Flask, app_id: int, tokens: list[tuple[str, str]], profile_id: int | None = None) -> None:
    now = utcnow()
    rows = [
        {
            "app_id": app_id,
            "platform": platform,
            "token": token,
            "sdk": "campaign-classic",
            "push_provider": "apns" if platform == "ios" else "fcm",
            "profile_id": profile_id,
            "additional_params": {},
            "disabled": False,
            "created_at": now,
            "last_registered_at": now,
        }
        for platform, token in tokens
    ]
    with runtime_of(app).sessions.begin() as session:
        session.execute(insert(Subscription), rows)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_delivery_reaches_good_tokens_once_and_handles_every_provider_error(
    app: Flask, client: FlaskClient, keys: Any, emulators: runner.RunningEmulators, pointed: dict[str, Any]
) -> None:
    ids = make_app(app, token_uri=emulators.fcm.token_url)
    alice = make_profile(app, "alice", first_name="Alice", attributes={"tier": "gold"})
    good_ios = [hex_token("0a", n) for n in range(3)]
    good_android = [f"android-ok-{n}" for n in range(3)]
    tokens = (
        [("ios", t) for t in good_ios]
        + [("android", t) for t in good_android]
        + [
            ("ios", hex_token("e4100000", 1)),
            ("ios", hex_token("e4000000", 1)),  # gone, bad
            ("ios", hex_token("f5030000", 1)),
            ("ios", hex_token("f4290000", 1)),  # unavailable, throttled once
            ("android", "unregistered-1"),
            ("android", "invalid-1"),
            ("android", "unavailable-once-1"),
            ("android", "quota-once-1"),
        ]
    )
    add_subscriptions(app, ids["id"], tokens, alice)
    body = {
        "app_id": ids["id"],
        "name": "e2e",
        "target": {"profiles": ["alice"]},
        "message": {
            "title": "Hi {{ profile.first_name }}",
            "body": "You are {{ profile.attributes.tier }}",
            "collapse_id": "sale",
            "ttl_seconds": 3600,
            "data": {"offer": "A1"},
        },
    }
    delivery = client.post("/api/v1/deliveries", json=body, headers=keys.marketer).json

    from gateway.app import create_app

    sender = runtime_of(create_app(overrides=pointed))
    worker = build_worker(sender)
    worker.start()
    try:

        def done() -> bool:
            return client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json["status"] == "completed"

        wait_for(done, 60, "the delivery to complete")
    finally:
        worker.stop()
        sender.engine.dispose()
    result = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json
    assert result["counts"]["sent"] == 10 and result["counts"]["failed"] == 4, result["counts"]
    accepted = Counter(r["token"] for r in emulators.inbox.items() if r["status"] == 200)
    assert accepted == Counter(
        good_ios
        + good_android
        + [hex_token("f5030000", 1), hex_token("f4290000", 1), "unavailable-once-1", "quota-once-1"]
    )
    ios = next(r for r in emulators.inbox.items("ios") if r["token"] == good_ios[0])
    assert ios["headers"]["apns-topic"] == ids["bundle_id"] and ios["headers"]["apns-push-type"] == "alert"
    assert ios["headers"]["apns-collapse-id"] == "sale" and ios["headers"]["apns-priority"] == "10"
    assert ios["payload"]["aps"]["alert"] == {"title": "Hi Alice", "body": "You are gold"}
    assert ios["payload"]["offer"] == "A1" and ios["payload"]["_dId"] == format(delivery["id"], "x")
    android = next(r for r in emulators.inbox.items("android") if r["token"] == good_android[0])
    assert android["payload"]["data"]["adb_title"] == "Hi Alice" and android["payload"]["data"]["offer"] == "A1"
    quarantined = {
        q["address"] for q in client.get("/api/v1/quarantine?status=quarantine", headers=keys.viewer).json["items"]
    }
    assert quarantined == {hex_token("e4100000", 1), hex_token("e4000000", 1), "unregistered-1", "invalid-1"}
    # Tracking moves the counts: Classic receive + click for one sent message.
    logs = client.get(f"/api/v1/deliveries/{delivery['id']}/broadlogs?status=sent", headers=keys.viewer).json["items"]
    client.get(f"/r/?id=h{logs[0]['id']:x},{delivery['id']:x},1")
    client.get(f"/r/?id=h{logs[0]['id']:x},{delivery['id']:x},2")
    counts = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json["counts"]
    assert (counts["received"], counts["opened"]) == (1, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_kill_9_mid_delivery_loses_nothing_and_resends_only_the_in_flight_window(
    app: Flask,
    client: FlaskClient,
    keys: Any,
    emulators: runner.RunningEmulators,
    pointed: dict[str, Any],
    tmp_path: Path,
) -> None:
    ids = make_app(app, token_uri=emulators.fcm.token_url)
    total = 2000
    tokens = [("ios", hex_token("0b", n)) for n in range(total // 2)] + [
        ("android", f"crash-test-{n}") for n in range(total // 2)
    ]
    add_subscriptions(app, ids["id"], tokens)
    body = {
        "app_id": ids["id"],
        "name": "crash",
        "target": {"all": True},
        "rate_per_second": 400,
        "message": {"title": "t", "body": "b"},
    }
    delivery = client.post("/api/v1/deliveries", json=body, headers=keys.marketer).json
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    env.update({f"PUSHGATE_{k.upper()}": str(v) for k, v in pointed.items()})
    env.update(
        {
            "PUSHGATE_SECRET_KEY": TEST_SECRET,
            "PUSHGATE_INSTANCE_PATH": str(tmp_path / "gw"),
            "PUSHGATE_WORKER_BATCH_SIZE": "15",
            "PUSHGATE_WORKER_CONCURRENCY": "2",
        }
    )

    def gateway() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(free_port())],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    first = gateway()
    try:
        wait_for(lambda: emulators.inbox.count() >= total * 0.3, 60, "30% of the delivery to be sent")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    sent_before_crash = emulators.inbox.count()
    assert sent_before_crash < total, "the delivery finished before the crash: nothing was tested"
    second = gateway()
    try:

        def done() -> bool:
            return client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json["status"] == "completed"

        wait_for(done, 120, "the delivery to complete after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    counts = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json["counts"]
    received = Counter(r["token"] for r in emulators.inbox.items())
    assert set(received) == {t for _, t in tokens}, "a message was lost"
    duplicates = sum(n - 1 for n in received.values())
    assert counts["sent"] == total and counts["pending"] == 0
    # The window is one batch per concurrent loop: 15 x 2 = 30 messages, 1.5% of the delivery.
    assert duplicates <= counts["resent_after_crash"] <= 30, (duplicates, counts)
    assert counts["resent_after_crash"] < total * 0.02
    print(json.dumps({"sent_before_crash": sent_before_crash, "duplicates": duplicates, **counts}))


def test_inbox_page_and_api(emulators: runner.RunningEmulators) -> None:
    import httpx

    emulators.inbox.add(
        "ios",
        {"token": "ab" * 32, "status": 200, "payload": {"aps": {"alert": {"title": "<b>Hi</b>", "body": "there"}}}},
    )
    with httpx.Client(base_url=emulators.inbox_url, timeout=5) as http:
        page = http.get("/")
        assert page.status_code == 200 and "&lt;b&gt;Hi&lt;/b&gt; / there" in page.text
        assert http.get("/inbox?platform=ios").json()[0]["platform"] == "ios"
        assert http.delete("/inbox").status_code == 204
        assert http.get("/inbox").json() == []
