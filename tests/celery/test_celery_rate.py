"""A delivery's ``rate_per_second`` holds across workers (issue 17): two worker processes, one
counter per delivery and second in Redis (:class:`push.distributed.SharedRate`).

Checked on what the APNs and FCM emulators received (their ``received_at``), per whole second:
each second admits RATE messages, all of them when the batch admitted in it is sent at once; a
batch admitted just before a second ends may still be arriving in the next, so no second may hold
more than two seconds' worth, and the typical second holds no more than RATE. The delivery as a
whole cannot be faster than the windows it needs: TOTAL / RATE of them.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import redis
from flask import Flask

from gateway.cli import peers as runner
from tests.celery.conftest import CeleryWorker, empty_queues
from tests.celery.test_celery_beat import delivery_to_devices
from tests.celery.test_celery_delivery import status_of, worker_settings
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

RATE, TOTAL = 10, 120
RATE_REDIS = "redis://127.0.0.1:6379/5"  # the limits' own database, not the broker's


def test_two_workers_keep_a_delivery_to_its_rate(
    app: Flask,
    gateway_with: Callable[..., Flask],
    emulators: runner.RunningEmulators,
    pointed: dict[str, Any],
    rabbitmq_url: str,
    redis_broker_url: str,  # Redis answers (or the test skips, or fails under CI)
    celery_workers: Callable[..., CeleryWorker],
) -> None:
    empty_queues(rabbitmq_url)
    redis.Redis.from_url(RATE_REDIS).flushdb()
    settings = {**worker_settings(pointed, rabbitmq_url), "redis_url": RATE_REDIS}
    workers = [celery_workers(settings, f"w{n}", "--pool=solo") for n in range(2)]
    gateway = gateway_with(broker_url=rabbitmq_url, celery_batches_in_flight=3)
    http, delivery, tokens = delivery_to_devices(gateway, emulators, TOTAL, "paced", rate_per_second=RATE)
    wait_until(
        lambda: status_of(http, delivery["id"])["status"] == "completed",
        180,
        interval=0.2,
        message="the paced delivery did not complete on two workers",
    )
    records = emulators.inbox.items()
    received = Counter(r["token"] for r in records)
    assert set(received) == set(tokens) and max(received.values()) == 1
    batches = {w.name: w.tasks_done("pushgate.send_batch") for w in workers}
    assert all(batches.values()), f"a worker sent nothing, so nothing was shared: {batches}"

    seconds = sorted(datetime.fromisoformat(r["received_at"]).timestamp() for r in records)
    per_second = Counter(int(t) for t in seconds)
    counts = [per_second.get(s, 0) for s in range(int(seconds[0]), int(seconds[-1]) + 1)]
    print(json.dumps({"rate": RATE, "messages": TOTAL, "per_second": counts, "batch_tasks": batches}))
    assert max(counts) <= 2 * RATE, counts
    assert statistics.median(counts) <= RATE, counts
    # TOTAL / RATE windows at least: the first and last received lie that many windows apart, less
    # the first window (entered at any point of it).
    assert len(counts) >= TOTAL // RATE - 1, counts
