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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

from gateway.cli import peers as runner
from gateway.worker import build_worker
from store.models import Subscription
from store.types import utcnow
from tests.conftest import TEST_SECRET, runtime_of
from tests.factories import make_app, make_profile, push_ids
from tests.values import apns_token, fcm_token
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


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


def run_worker_until(pointed: dict[str, Any], done: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Run the worker of a gateway configured with ``pointed`` (sending to the emulators) until ``done()``."""
    from gateway.app import create_app

    sender = runtime_of(create_app(overrides=pointed))
    worker = build_worker(sender)
    worker.start()
    try:
        wait_until(done, timeout, interval=0.1, message=f"timed out waiting for {what}")
    finally:
        worker.stop()
        sender.engine.dispose()


def test_delivery_reaches_good_tokens_once_and_handles_every_provider_error(
    app: Flask, client: FlaskClient, keys: Any, emulators: runner.RunningEmulators, pointed: dict[str, Any]
) -> None:
    ids = make_app(app, token_uri=emulators.fcm.token_url)
    alice = make_profile(app, "alice", first_name="Alice", attributes={"tier": "gold"})
    good_ios = [apns_token(f"ok-{n}") for n in range(3)]
    good_android = [fcm_token(f"ok-{n}") for n in range(3)]
    # Real tokens behind the emulators' prefixes: gone, bad; unavailable, throttled once.
    ios_gone, ios_bad, ios_unavailable, ios_throttled = (
        apns_token(prefix, prefix) for prefix in ("e4100000", "e4000000", "f5030000", "f4290000")
    )
    android_gone, android_bad, android_unavailable, android_throttled = (
        fcm_token(prefix, prefix) for prefix in ("unregistered-", "invalid-", "unavailable-once-", "quota-once-")
    )
    tokens = [("ios", t) for t in (*good_ios, ios_gone, ios_bad, ios_unavailable, ios_throttled)] + [
        ("android", t) for t in (*good_android, android_gone, android_bad, android_unavailable, android_throttled)
    ]
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

    def done() -> bool:
        return client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json["status"] == "completed"

    run_worker_until(pointed, done, "the delivery to complete")
    result = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json
    assert result["counts"]["sent"] == 10 and result["counts"]["failed"] == 4, result["counts"]
    accepted = Counter(r["token"] for r in emulators.inbox.items() if r["status"] == 200)
    assert accepted == Counter(
        good_ios + good_android + [ios_unavailable, ios_throttled, android_unavailable, android_throttled]
    )
    ios = next(r for r in emulators.inbox.items("ios") if r["token"] == good_ios[0])
    assert ios["headers"]["apns-topic"] == ids["bundle_id"] and ios["headers"]["apns-push-type"] == "alert"
    assert ios["headers"]["apns-collapse-id"] == "sale" and ios["headers"]["apns-priority"] == "10"
    assert ios["payload"]["aps"]["alert"] == {"title": "Hi Alice", "body": "You are gold"}
    assert ios["payload"]["offer"] == "A1"
    assert ios["payload"]["_dId"] == push_ids(app, int(ios["payload"]["_mId"]), delivery["id"])[1]  # signed
    android = next(r for r in emulators.inbox.items("android") if r["token"] == good_android[0])
    assert android["payload"]["data"]["adb_title"] == "Hi Alice" and android["payload"]["data"]["offer"] == "A1"
    quarantined = {
        q["address"] for q in client.get("/api/v1/quarantine?status=quarantine", headers=keys.viewer).json["items"]
    }
    assert quarantined == {ios_gone, ios_bad, android_gone, android_bad}
    # Tracking moves the counts: Classic receive + click for one sent message.
    logs = client.get(f"/api/v1/deliveries/{delivery['id']}/broadlogs?status=sent", headers=keys.viewer).json["items"]
    _mid, did = push_ids(app, logs[0]["id"], delivery["id"])  # what the push carried
    client.get(f"/r/?id=h{logs[0]['id']:x},{did},1")
    client.get(f"/r/?id=h{logs[0]['id']:x},{did},2")
    counts = client.get(f"/api/v1/deliveries/{delivery['id']}", headers=keys.viewer).json["counts"]
    assert (counts["received"], counts["opened"]) == (1, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_first_request(process: subprocess.Popen[Any], port: int, timeout: float = 30) -> None:
    """Wait until the server ``process`` on ``port`` answers a request (stopping it if it never does)."""
    import httpx

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, timeout, interval=0.1, message="the server did not answer /healthz")
    except BaseException:
        process.kill()
        process.wait(10)
        raise


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
    tokens = [("ios", apns_token(f"crash-{n}")) for n in range(total // 2)] + [
        ("android", fcm_token(f"crash-{n}")) for n in range(total // 2)
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
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        serve_first_request(process, port)  # `flask run` starts its worker with the first request
        return process

    first = gateway()
    try:
        wait_until(
            lambda: emulators.inbox.count() >= total * 0.3,
            60,
            interval=0.1,
            message="30% of the delivery was not sent",
        )
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

        wait_until(done, 120, interval=0.1, message="the delivery did not complete after the restart")
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
