"""Two beats by mistake (issue 17): a scheduled delivery still starts, and is sent, exactly once.

Two ``celery -A pushgate_celery beat`` processes each enqueue ``pushgate.tick`` every second, and
two worker processes run those ticks side by side; each tick looks for the scheduled deliveries
that are due and starts them with the conditional move scheduled -> running
(:func:`domain.delivery_status.start`, one ``UPDATE ... WHERE status = 'scheduled'``), so only one
tick analyses the delivery and seeds its batch tasks. Every message must reach the emulators once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from gateway.cli import peers as runner
from tests.celery.conftest import CeleryWorker, empty_queues
from tests.celery.test_celery_delivery import status_of, worker_settings
from tests.conftest import Keys
from tests.factories import make_app
from tests.functional.test_push_end_to_end import add_subscriptions
from tests.values import apns_token, fcm_token
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

TICK_SENT = "Sending due task start due deliveries (pushgate.tick)"


def delivery_to_devices(
    gateway: Flask, emulators: runner.RunningEmulators, total: int, label: str, **fields: Any
) -> tuple[tuple[Any, Keys], dict[str, Any], list[str]]:
    """``total`` devices (half iOS, half Android) and a delivery to all of them with ``fields``
    (``schedule_at``, ``rate_per_second``), created through the API of ``gateway``; (client,
    delivery, tokens)."""
    ids = make_app(gateway, token_uri=emulators.fcm.token_url)
    tokens = [("ios", apns_token(f"{label}-{n}")) for n in range(total // 2)]
    tokens += [("android", fcm_token(f"{label}-{n}")) for n in range(total - total // 2)]
    add_subscriptions(gateway, ids["id"], tokens)
    keys = Keys(gateway)
    client = gateway.test_client()
    body = {
        "app_id": ids["id"],
        "name": "Winter sale",
        "target": {"all": True},
        "message": {"title": "Winter sale", "body": "Starts now"},
        **fields,
    }
    answer = client.post("/api/v1/deliveries", json=body, headers=keys.marketer)
    assert answer.status_code == 201, answer.json
    return (client, keys), answer.json, [token for _, token in tokens]


def test_two_beats_start_a_scheduled_delivery_once(
    app: Flask,
    gateway_with: Callable[..., Flask],
    emulators: runner.RunningEmulators,
    pointed: dict[str, Any],
    rabbitmq_url: str,
    celery_workers: Callable[..., CeleryWorker],
    celery_beats: Callable[[dict[str, Any], str], CeleryWorker],
) -> None:
    empty_queues(rabbitmq_url)
    settings = worker_settings(pointed, rabbitmq_url)
    workers = [celery_workers(settings, f"w{n}", "--pool=solo") for n in range(2)]
    beats = [celery_beats(settings, f"beat{n}") for n in range(2)]
    wait_until(
        lambda: all(w.tasks_done("pushgate.tick") for w in workers),
        60,
        interval=0.2,
        message="the two workers did not both run a tick from the beats",
    )
    gateway = gateway_with(broker_url=rabbitmq_url)
    total = 400
    # Later than the API's own enqueued start (which finds it not due): only a tick can start it.
    schedule_at = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    http, delivery, tokens = delivery_to_devices(gateway, emulators, total, "beat", schedule_at=schedule_at)
    assert status_of(http, delivery["id"])["status"] == "scheduled"
    ticks_before = sum(w.tasks_done("pushgate.tick") for w in workers)

    wait_until(
        lambda: status_of(http, delivery["id"])["status"] == "completed",
        120,
        interval=0.2,
        message="the scheduled delivery did not complete with two beats",
    )
    received = Counter(r["token"] for r in emulators.inbox.items())
    assert set(received) == set(tokens), "a message was lost"
    assert max(received.values()) == 1, "a message was sent twice"
    counts = status_of(http, delivery["id"])["counts"]
    assert counts["sent"] == total and counts["pending"] == 0 and counts["resent_after_crash"] == 0
    sent_by_beat = {b.name: b.log().count(TICK_SENT) for b in beats}
    assert all(sent_by_beat.values()), f"a beat sent no tick: {sent_by_beat}"
    ticks = {w.name: w.tasks_done("pushgate.tick") for w in workers}
    assert sum(ticks.values()) > ticks_before, "no tick ran while the delivery was due"
    starts = sum(w.log().count(f"delivery {delivery['id']} started") for w in workers)
    assert starts == 1, f"the delivery was started {starts} times"
    print(json.dumps({"ticks_sent_by_beat": sent_by_beat, "ticks_run_by_worker": ticks, "starts_logged": starts}))
