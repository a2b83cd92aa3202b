"""Celery mode's broker as both sides use it: the Celery app made from the settings.

With ``PUSHGATE_BROKER_URL`` set, web processes enqueue (:func:`enqueue_start`) and the
``pushgate_celery`` workers consume, both through the app :func:`make_celery` configures: the
queues (``push`` for deliveries, ``sync`` for sync jobs), late acknowledgement (a task is
acknowledged once it ran, and given to another worker when its worker dies: at once on RabbitMQ,
after ``PUSHGATE_CELERY_VISIBILITY_TIMEOUT`` on Redis) and one prefetched task per process. The
task names below are the contract between the two sides: the web never imports the task code.

It also answers /readyz (:func:`ping`) and /metrics (:func:`refresh_queue_depths`) about the broker,
each within a short timeout and never failing the request.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from celery import Celery
from flask import Flask
from kombu.connection import Connection

from core.config import Settings
from core.metrics import BROKER_QUEUE_DEPTH

log = logging.getLogger("pushgate.broker")

PUSH_QUEUE, SYNC_QUEUE = "push", "sync"
START_DELIVERY = "pushgate.start_delivery"
SEND_BATCH = "pushgate.send_batch"
TICK = "pushgate.tick"
SYNC_JOB = "pushgate.sync_job"
#: ``app.extensions`` key of the web process's producer app.
EXTENSION = "pushgate_celery"
#: How long /readyz waits for the broker.
PING_SECONDS = 2.0
#: How long /metrics waits for the broker's queue depths (a scrape must not hang on a broker down).
DEPTH_SECONDS = 1.0


def make_celery(settings: Settings, main: str = "pushgate") -> Celery:
    app = Celery(main, broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=PUSH_QUEUE,
        task_routes={SYNC_JOB: {"queue": SYNC_QUEUE}},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # outcomes live in the database, not in a result backend
        # A task is acknowledged after it ran: a worker killed mid-batch leaves its task to another.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One task at a time per thread: a prefetched batch would wait behind a slow one.
        worker_prefetch_multiplier=1,
        # A worker process sends PUSHGATE_WORKER_CONCURRENCY batches side by side on threads that
        # share its one event loop and provider connections, as the embedded worker does: sending
        # waits on the network and the database, not the CPU. bench/scale.py at 100,000 messages:
        # threads x 2 at 1.03 of the embedded worker, a one-batch-at-a-time process (solo) at 0.53.
        worker_pool="threads",
        worker_concurrency=settings.worker_concurrency,
        # Redis: unacknowledged tasks go back to the queue after this (RabbitMQ ignores it).
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout},
        broker_connection_retry_on_startup=True,
        # A web request that enqueues does not wait long for a broker that is down: the beat's
        # tick starts the delivery anyway (see gateway.worker.delivery_created).
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    return app


def producer(app: Flask) -> Celery:
    """This web process's Celery app (made on first use, after any fork)."""
    celery: Celery | None = app.extensions.get(EXTENSION)
    if celery is None:
        celery = app.extensions[EXTENSION] = make_celery(app.extensions["pushgate"].settings)
    return celery


def enqueue_start(app: Flask, delivery_id: int) -> bool:
    """Enqueue the start of a delivery just created; False (logged) when the broker refused it."""
    try:
        producer(app).send_task(START_DELIVERY, args=[delivery_id], queue=PUSH_QUEUE)
    except Exception as exc:  # kombu's errors vary by transport; the beat's tick starts it anyway
        log.error("delivery %s: could not enqueue its start (%s); the beat starts it", delivery_id, exc)
        return False
    return True


def _connect(settings: Settings, timeout: float) -> Connection:
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    return Connection(settings.broker_url, connect_timeout=timeout, transport_options=options)  # type: ignore[no-untyped-call]


def ping(settings: Settings, timeout: float = PING_SECONDS) -> str:
    """``ok``, or why the broker cannot be reached (for /readyz; never the URL, which holds a password)."""
    try:
        with _connect(settings, timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
            connection.default_channel  # noqa: B018  (Redis connects on the first channel)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def queue_depths(settings: Settings, timeout: float = DEPTH_SECONDS) -> dict[str, int]:
    """Messages waiting in the push and sync queues (not those workers hold): a passive declare,
    which RabbitMQ answers with the queue's count and kombu's Redis transport with the length of
    the queue's lists. A queue not declared yet (RabbitMQ) or empty (Redis deletes an empty list)
    holds 0. Raises when the broker does not answer within ``timeout``."""
    depths: dict[str, int] = {}
    with _connect(settings, timeout) as connection:
        connection.ensure_connection(max_retries=1, timeout=timeout)
        for queue in (PUSH_QUEUE, SYNC_QUEUE):
            # A channel per queue: RabbitMQ closes the channel that asked for a missing queue.
            channel = connection.channel()
            try:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except connection.channel_errors:
                depths[queue] = 0
            finally:
                channel.close()
    return depths


def refresh_queue_depths(settings: Settings, timeout: float = DEPTH_SECONDS) -> None:
    """Set ``pushgate_broker_queue_depth`` from the broker, or to NaN (logged) when it does not answer."""
    depths: dict[str, float]
    try:
        depths = {queue: float(depth) for queue, depth in queue_depths(settings, timeout).items()}
    except Exception as exc:  # kombu's errors vary by transport; the scrape goes on without them
        log.warning("/metrics: the broker's queue depths are unknown (%s)", type(exc).__name__)
        depths = {PUSH_QUEUE: math.nan, SYNC_QUEUE: math.nan}
    for queue, depth in depths.items():
        BROKER_QUEUE_DEPTH.labels(queue=queue).set(depth)
