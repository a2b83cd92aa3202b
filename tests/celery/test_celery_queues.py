"""The ``sync`` and ``push`` queues apart (issue 17): a long segment import does not delay a send;
and /metrics reports how many tasks wait in each (``pushgate_broker_queue_depth``).

As the README tells operators (``-Q push`` hosts for sending, ``-Q sync`` hosts for sync jobs), one
worker consumes ``push`` and another ``sync``. A segment import of a large export from Azurite runs
on the sync worker; a delivery created while it runs must complete while the import is still
running (an order of events, not a timing).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from core.metrics import BROKER_QUEUE_DEPTH
from gateway.broker import PUSH_QUEUE, SEND_BATCH, SYNC_JOB, SYNC_QUEUE, producer
from gateway.cli import peers as runner
from store.models import SyncRun
from sync.peers.azurite import Azurite
from tests.celery.conftest import CeleryWorker, empty_queues
from tests.celery.test_celery_delivery import send, status_of, worker_settings
from tests.conftest import runtime_of
from tests.sync.segments.conftest import azurite, container  # noqa: F401  (fixtures)
from tests.sync.segments.exports import SEG_VIP, export_name, single, upload
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

#: Rows of the export: enough for an import that lasts well beyond a small delivery on this machine.
ROWS = 300_000


def sync_run(app: Flask) -> SyncRun | None:
    with runtime_of(app).sessions() as session:
        return session.query(SyncRun).filter_by(job="segments").order_by(SyncRun.id.desc()).first()


def test_a_long_import_on_the_sync_queue_does_not_delay_a_send_on_the_push_queue(
    app: Flask,
    gateway_with: Callable[..., Flask],
    emulators: runner.RunningEmulators,
    pointed: dict[str, Any],
    rabbitmq_url: str,
    celery_workers: Callable[..., CeleryWorker],
    azurite: Azurite,  # noqa: F811
    container: ContainerClient,  # noqa: F811
) -> None:
    empty_queues(rabbitmq_url)
    upload(container, export_name(SEG_VIP), single((f"CRM-{n:07d}", "realized") for n in range(ROWS)))
    settings = {
        **worker_settings(pointed, rabbitmq_url),
        "segments_connection_string": azurite.connection_string,
        "segments_container": container.container_name,
        "segments_identity_column": "crmId",
        "reconciliation_field": "external_id",
        "sync_segments_cron": "0 6 1 1 *",  # a firing of its own; the beat does not run here
    }
    celery_workers(settings, "pusher", "--pool=solo", queues="push")
    syncer = celery_workers(settings, "syncer", "--pool=solo", queues="sync")
    gateway = gateway_with(broker_url=rabbitmq_url)
    # What the beat sends at the cron's time.
    producer(gateway).send_task(SYNC_JOB, args=["segments"], queue=SYNC_QUEUE)
    wait_until(
        lambda: (run := sync_run(app)) is not None and run.status == "running",
        60,
        interval=0.1,
        message="the segment import did not start on the sync worker",
    )
    started = time.monotonic()

    http, delivery, tokens = send(gateway, emulators, 100, "during-import")
    wait_until(
        lambda: status_of(http, delivery["id"])["status"] == "completed",
        120,
        interval=0.1,
        message="the delivery did not complete while an import ran",
    )
    delivered_after = time.monotonic() - started
    during = sync_run(app)
    assert during is not None and during.status == "running", "the import ended before the delivery: nothing was tested"
    received = Counter(r["token"] for r in emulators.inbox.items())
    assert set(received) == set(tokens) and max(received.values()) == 1

    wait_until(
        lambda: (run := sync_run(app)) is not None and run.status != "running",
        300,
        interval=0.5,
        message="the segment import did not finish",
    )
    done = sync_run(app)
    assert done is not None and done.status == "succeeded", (done.status if done else None, done and done.error)
    assert syncer.tasks_done(SYNC_JOB) == 1
    assert done.ended_at is not None
    print(
        json.dumps(
            {
                "export_rows": ROWS,
                "import_seconds": round((done.ended_at - done.started_at).total_seconds(), 1),
                "delivery_completed_after_import_began_seconds": round(delivered_after, 1),
            }
        )
    )


def broker_depths(gateway: Flask) -> dict[str, float]:
    """``pushgate_broker_queue_depth`` by queue, as a scrape of ``gateway``'s /metrics reads it."""
    answer = gateway.test_client().get("/metrics")
    assert answer.status_code == 200
    families = text_string_to_metric_families(answer.get_data(as_text=True))
    return {
        sample.labels["queue"]: sample.value
        for family in families
        if family.name == "pushgate_broker_queue_depth"
        for sample in family.samples
    }


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_metrics_report_the_broker_queue_depths(
    broker: str, request: pytest.FixtureRequest, app: Flask, gateway_with: Callable[..., Flask]
) -> None:
    broker_url = request.getfixturevalue("rabbitmq_url" if broker == "rabbitmq" else "redis_broker_url")
    empty_queues(broker_url)
    gateway = gateway_with(broker_url=broker_url)
    assert broker_depths(gateway) == {"push": 0, "sync": 0}
    celery = producer(gateway)
    for delivery_id in range(3):  # no worker runs: they wait in the queue
        celery.send_task(SEND_BATCH, args=[delivery_id, None], queue=PUSH_QUEUE)
    celery.send_task(SYNC_JOB, args=["segments"], queue=SYNC_QUEUE)
    assert broker_depths(gateway) == {"push": 3, "sync": 1}
    empty_queues(broker_url)
    assert broker_depths(gateway) == {"push": 0, "sync": 0}

    down = "amqp://guest:guest@127.0.0.1:1//" if broker == "rabbitmq" else "redis://127.0.0.1:1/6"
    unknown = broker_depths(gateway_with(broker_url=down))  # answered all the same
    assert set(unknown) == {"push", "sync"} and all(math.isnan(v) for v in unknown.values())


def test_an_embedded_gateway_reports_no_broker_queue(app: Flask) -> None:
    BROKER_QUEUE_DEPTH.clear()  # what this test process's Celery-mode gateways set before
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'pushgate_broker_queue_depth{queue="push"}' not in text
