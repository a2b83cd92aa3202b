"""Celery mode end to end: real ``celery -A pushgate_celery worker`` processes on RabbitMQ (or
Redis), PostgreSQL and the local APNs and FCM emulators, fed by a gateway in Celery mode whose API
only enqueues. Every message must arrive exactly once, a worker killed with SIGKILL mid-delivery
must lose nothing (duplicates within ``resent_after_crash``), and the broker never holds more than
PUSHGATE_CELERY_BATCHES_IN_FLIGHT batches of the delivery. Figures are printed, not judged."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from gateway.cli import peers as runner
from tests.celery.conftest import CeleryWorker, empty_queues, ready_messages
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.functional.test_push_end_to_end import add_subscriptions
from tests.values import apns_token, fcm_token
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

IN_FLIGHT = 3
BATCH = 50


def send(
    gateway: Flask,
    emulators: runner.RunningEmulators,
    total: int,
    label: str,
) -> tuple[Any, dict[str, Any], list[str]]:
    """An app whose credentials the emulators know, ``total`` devices (half iOS, half Android) and a
    delivery to all of them created through the API of ``gateway``; (client, delivery, tokens)."""
    from tests.conftest import Keys

    ids = make_app(gateway, token_uri=emulators.fcm.token_url)
    tokens = [("ios", apns_token(f"{label}-{n}")) for n in range(total // 2)]
    tokens += [("android", fcm_token(f"{label}-{n}")) for n in range(total - total // 2)]
    add_subscriptions(gateway, ids["id"], tokens)
    keys = Keys(gateway)
    client = gateway.test_client()
    body = {"app_id": ids["id"], "name": label, "target": {"all": True}, "message": {"title": "t", "body": "b"}}
    answer = client.post("/api/v1/deliveries", json=body, headers=keys.marketer)
    assert answer.status_code == 201, answer.json
    return (client, keys), answer.json, [token for _, token in tokens]


def status_of(gateway_client: tuple[Any, Any], delivery_id: int) -> dict[str, Any]:
    client, keys = gateway_client
    body: dict[str, Any] = client.get(f"/api/v1/deliveries/{delivery_id}", headers=keys.viewer).json
    return body


def worker_settings(pointed: dict[str, Any], broker_url: str) -> dict[str, Any]:
    settings = {k: v for k, v in pointed.items() if k not in ("secret_key", "instance_path")}
    return {
        **settings,
        "broker_url": broker_url,
        "worker_batch_size": BATCH,
        "celery_batches_in_flight": IN_FLIGHT,
        "celery_visibility_timeout": 10,
        "redis_url": "",
    }


def test_three_workers_send_5000_messages_each_exactly_once(
    app: Flask,
    gateway_with: Callable[..., Flask],
    emulators: runner.RunningEmulators,
    pointed: dict[str, Any],
    rabbitmq_url: str,
    celery_workers: Callable[..., CeleryWorker],
) -> None:
    empty_queues(rabbitmq_url)
    settings = worker_settings(pointed, rabbitmq_url)
    workers = [celery_workers(settings, f"w{n}", "--pool=solo", shortcut=n == 2) for n in range(3)]
    gateway = gateway_with(broker_url=rabbitmq_url, celery_batches_in_flight=IN_FLIGHT)
    total = 5000
    started = time.monotonic()
    http, delivery, tokens = send(gateway, emulators, total, "share")
    deepest = 0

    def completed() -> bool:
        nonlocal deepest
        deepest = max(deepest, ready_messages(rabbitmq_url))
        return bool(status_of(http, delivery["id"])["status"] == "completed")

    wait_until(completed, 180, interval=0.2, message="the delivery did not complete on three Celery workers")
    elapsed = time.monotonic() - started
    received = Counter(r["token"] for r in emulators.inbox.items())
    assert set(received) == set(tokens), "a message was lost"
    assert max(received.values()) == 1, "a message was sent twice"
    counts = status_of(http, delivery["id"])["counts"]
    assert counts["sent"] == total and counts["pending"] == 0 and counts["resent_after_crash"] == 0
    assert deepest <= IN_FLIGHT, f"{deepest} batch tasks of one delivery waited in the broker at once"
    batches = {w.name: w.tasks_done("pushgate.send_batch") for w in workers}
    assert all(batches.values()), f"a worker sent nothing: {batches}"
    print(
        json.dumps(
            {
                "messages": total,
                "seconds": round(elapsed, 2),
                "messages_per_second": round(total / elapsed),
                "batch_tasks_per_worker": batches,
                "deepest_push_queue": deepest,
            }
        )
    )


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_a_worker_killed_mid_delivery_loses_nothing(
    broker: str,
    request: pytest.FixtureRequest,
    app: Flask,
    gateway_with: Callable[..., Flask],
    emulators: runner.RunningEmulators,
    pointed: dict[str, Any],
    celery_workers: Callable[..., CeleryWorker],
) -> None:
    broker_url = request.getfixturevalue("rabbitmq_url" if broker == "rabbitmq" else "redis_broker_url")
    empty_queues(broker_url)
    settings = worker_settings(pointed, broker_url)
    doomed = celery_workers(settings, "doomed", "--pool=solo")
    survivor = celery_workers(settings, "survivor", "--pool=prefork", "--concurrency=1")
    gateway = gateway_with(broker_url=broker_url, celery_batches_in_flight=IN_FLIGHT)
    total = 3000
    http, delivery, tokens = send(gateway, emulators, total, f"crash-{broker}")
    wait_until(
        lambda: emulators.inbox.count() >= total * 0.3 and doomed.tasks_done("pushgate.send_batch") > 0,
        120,
        interval=0.05,
        message="30% of the delivery was not sent, or not by the worker to kill",
    )
    doomed.kill()
    sent_before_crash = emulators.inbox.count()
    assert sent_before_crash < total, "the delivery finished before the crash: nothing was tested"
    wait_until(
        lambda: status_of(http, delivery["id"])["status"] == "completed",
        180,
        interval=0.2,
        message="the delivery did not complete after a worker was killed",
    )
    counts = status_of(http, delivery["id"])["counts"]
    received = Counter(r["token"] for r in emulators.inbox.items())
    assert set(received) == set(tokens), "a message was lost"
    duplicates = sum(n - 1 for n in received.values())
    assert counts["sent"] == total and counts["pending"] == 0
    # The killed worker held at most one batch (one task at a time, one prefetched message).
    assert duplicates <= counts["resent_after_crash"] <= BATCH, (duplicates, counts)
    assert survivor.tasks_done("pushgate.send_batch") > 0
    print(json.dumps({"broker": broker, "sent_before_crash": sent_before_crash, "duplicates": duplicates, **counts}))


def test_readyz_reports_the_broker(gateway_with: Callable[..., Flask], rabbitmq_url: str) -> None:
    up = gateway_with(broker_url=rabbitmq_url).test_client().get("/readyz")
    assert (up.status_code, up.json["status"], up.json["broker"]) == (200, "ok", "ok")
    down = gateway_with(broker_url="amqp://guest:guest@127.0.0.1:1//").test_client().get("/readyz")
    assert down.status_code == 200 and down.json["status"] == "degraded"
    assert down.json["broker"].startswith("unreachable: ") and "guest" not in down.json["broker"]


def test_an_embedded_gateway_says_nothing_of_a_broker(app: Flask) -> None:
    answer = app.test_client().get("/readyz")
    assert answer.json == {"status": "ok", "database": "ok", "deliveries": "ok", "stalled": []}
    assert runtime_of(app).settings.broker_url == ""
