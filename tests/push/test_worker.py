"""The in-process worker's loop: polling, waking up at once, stopping."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from flask import Flask

import push.worker as worker_module
from push.providers.base import PushMessage, SendResult
from push.worker import Worker
from tests.conftest import runtime_of
from tests.values import apns_token, fcm_token
from tests.waiting import wait_until


class CountingEngine:
    """The part of push.engine.Engine the worker's tick calls, counting the ticks."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.ticks = 0
        self.ticked = threading.Event()

    def poll(self, now: datetime | None = None) -> list[int]:
        self.ticks += 1
        self.ticked.set()
        return []


def test_wake_ticks_at_once_instead_of_at_the_next_poll(app: Flask) -> None:
    engine = CountingEngine(runtime_of(app).sessions)
    worker = Worker(lambda: engine, poll_interval=30)  # type: ignore[arg-type, return-value]
    worker.start()
    try:
        assert engine.ticked.wait(5)
        engine.ticked.clear()
        started = time.monotonic()
        worker.wake()
        assert engine.ticked.wait(5)
        assert time.monotonic() - started < 5 and engine.ticks == 2
    finally:
        stopping = time.monotonic()
        worker.stop()
        assert time.monotonic() - stopping < 5  # the stop is not held up by the 30 s poll


def test_the_delivery_api_wakes_the_in_process_worker(app: Flask, client: Any, keys: Any) -> None:
    from tests.factories import make_app

    woken = threading.Event()

    class Recorder:
        def wake(self) -> None:
            woken.set()

    app.extensions["pushgate_worker"] = Recorder()
    ids = make_app(app)
    body = {"app_id": ids["id"], "name": "now", "target": {"all": True}, "message": {"title": "t", "body": "b"}}
    assert client.post("/api/v1/deliveries", json=body, headers=keys.marketer).status_code == 201
    assert woken.is_set()


class RecordingProvider:
    """Accepts every message, noting when; ``delay`` seconds per batch (a slow provider)."""

    def __init__(self, platform: str, log: list[tuple[str, float]], delay: float = 0.0) -> None:
        self.platform, self.log, self.delay = platform, log, delay

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.log.extend((self.platform, time.monotonic()) for _ in messages)
        return [SendResult(m.key, provider_message_id=f"pm-{m.key}") for m in messages]

    async def close(self) -> None:
        return None


def send_to_both_platforms(app: Flask, client: Any, keys: Any, delays: dict[str, float]) -> list[tuple[str, float]]:
    """A delivery to 12 iOS and 12 Android devices through a real worker and engine (batches of 3,
    two loops); returns (platform, when) per message sent, in order."""
    from domain.subscriptions import Registration, register
    from gateway.worker import engine_settings
    from push.engine import Engine
    from tests.factories import make_app

    ids = make_app(app)
    rt = runtime_of(app)
    with rt.sessions.begin() as session:
        for n in range(12):
            for platform, provider in (("ios", "apns"), ("android", "fcm")):
                token = apns_token(n) if platform == "ios" else fcm_token(n)
                registration = Registration(
                    app_id=ids["id"], platform=platform, token=token, sdk="campaign-classic", push_provider=provider
                )
                register(session, registration, reconciliation_field="external_id")
    log: list[tuple[str, float]] = []
    providers = {p: RecordingProvider(p, log, delays.get(p, 0.0)) for p in ("ios", "android")}
    settings = replace(engine_settings(rt), batch_size=3)
    worker = Worker(
        lambda: Engine(rt.sessions, lambda part: providers[part.platform], settings), poll_interval=0.05, concurrency=2
    )
    body = {"app_id": ids["id"], "name": "both", "target": {"all": True}, "message": {"title": "t", "body": "b"}}
    delivery = client.post("/api/v1/deliveries", json=body, headers=keys.marketer).json
    worker.start()
    try:
        url = f"/api/v1/deliveries/{delivery['id']}"
        wait_until(
            lambda: client.get(url, headers=keys.viewer).json["status"] == "completed",
            30,
            message="the delivery did not complete",
        )
    finally:
        worker.stop()
    assert sorted(p for p, _ in log) == ["android"] * 12 + ["ios"] * 12
    return log


def test_a_delivery_to_both_platforms_sends_ios_first(app: Flask, client: Any, keys: Any) -> None:
    """APNs messages cost the worker a fifth of FCM's CPU: sent first, iOS devices get the push
    sooner and the delivery ends no later."""
    log = send_to_both_platforms(app, client, keys, {})
    platforms = [p for p, _ in log]
    assert platforms == ["ios"] * 12 + ["android"] * 12


def test_a_slow_provider_does_not_hold_the_other_platform_back(
    app: Flask, client: Any, keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "SLOW_BATCH_SECONDS", 0.1)
    log = send_to_both_platforms(app, client, keys, {"ios": 0.3})
    last_ios = max(t for p, t in log if p == "ios")
    android_done = max(t for p, t in log if p == "android")
    assert android_done < last_ios  # Android went out while the slow APNs batches were still going
