"""The in-process worker's loop: polling, waking up at once, stopping."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from flask import Flask

from push.worker import Worker
from tests.conftest import runtime_of


class CountingEngine:
    """The part of push.engine.Engine the worker's tick calls, counting the ticks."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.ticks = 0
        self.ticked = threading.Event()

    def start_due(self, now: datetime | None = None) -> list[int]:
        self.ticks += 1
        self.ticked.set()
        return []

    def running(self) -> list[int]:
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
