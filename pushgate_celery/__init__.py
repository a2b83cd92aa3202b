"""Celery mode's workers and beat (``PUSHGATE_BROKER_URL`` set; the README's "Scale-out on Celery").

    celery -A pushgate_celery worker -Q push,sync   # on each worker host (or -Q push and -Q sync apart)
    celery -A pushgate_celery beat                  # on exactly one host

Built from the same settings, database and credential box as the gateway
(:func:`gateway.app.create_app_or_exit`: a wrong setting, SQLite with a broker, an unreachable
database or a wrong secret key stop it with one line). The tasks (names in :mod:`gateway.broker`):

- ``pushgate.start_delivery(delivery_id)``, enqueued by the web process that created it: the
  analysis into broadLog, then ``PUSHGATE_CELERY_BATCHES_IN_FLIGHT`` batch tasks
  (:func:`push.distributed.start`);
- ``pushgate.send_batch(delivery_id, platform)``: one claimed batch, sent and recorded, replaced by
  the next while messages remain (:func:`push.distributed.step`). A batch task that fails (the
  database or a provider unreachable) is retried with back-off, so its chain never breaks; one that
  is given again after its worker died claims again and never resends a Sent message;
- ``pushgate.tick()``, from the beat every second: starts the scheduled deliveries that are due
  (and any whose start could not be enqueued);
- ``pushgate.sync_job(job)`` on the ``sync`` queue, from the beat at the ``PUSHGATE_SYNC_*_CRON``
  times: each firing runs once cluster-wide (:func:`sync.service.claim_firing`), even with two
  beats.

Each worker process keeps one event loop on a thread (:class:`push.loop.LoopThread`), started when
the process starts (prefork) or with its first task (solo, threads), and with it one
:class:`push.providers.pool.ProviderPool`: APNs and FCM connections and provider tokens live across
tasks.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from celery.schedules import crontab
from celery.signals import worker_process_init, worker_process_shutdown
from croniter import croniter

from gateway.app import create_app_or_exit
from gateway.broker import PUSH_QUEUE, SEND_BATCH, START_DELIVERY, SYNC_JOB, SYNC_QUEUE, TICK, make_celery
from gateway.runtime import Runtime
from gateway.worker import engine_settings
from push import distributed
from push.engine import Engine
from push.loop import LoopThread
from push.providers.pool import ProviderPool
from store.types import utcnow
from sync.service import RunInProgress, claim_firing, run_now, schedules

log = logging.getLogger("pushgate.celery")
#: How often the beat looks for scheduled deliveries that are due.
TICK_SECONDS = 1.0
#: How often a worker process drops what it keeps for deliveries no longer running.
PRUNE_SECONDS = 60.0


def _crontab(cron: str) -> crontab:
    minute, hour, day_of_month, month_of_year, day_of_week = cron.split()
    return crontab(minute, hour, day_of_week, day_of_month, month_of_year)  # not cron's order


flask_app = create_app_or_exit()
rt: Runtime = flask_app.extensions["pushgate"]
if not rt.settings.broker_url:
    raise SystemExit("pushgate: PUSHGATE_BROKER_URL is not set: Celery mode needs a broker (see the README)")
app = make_celery(rt.settings)
app.conf.beat_schedule = {
    "start due deliveries": {"task": TICK, "schedule": TICK_SECONDS, "options": {"queue": PUSH_QUEUE, "expires": 10}},
    **{
        f"sync {job}": {
            "task": SYNC_JOB,
            "schedule": _crontab(cron),
            "args": [job],
            "options": {"queue": SYNC_QUEUE},
        }
        for job, cron in schedules(rt.settings).items()
    },
}


class _Process:
    """What this worker process keeps across tasks."""

    lock = threading.Lock()
    loop: LoopThread | None = None
    engine: Engine | None = None
    pool: ProviderPool | None = None
    rate: distributed.SharedRate | None = None
    pruned_at = 0.0


def _start_process() -> None:
    with _Process.lock:
        if _Process.loop is not None:
            return
        _Process.pool = ProviderPool(rt.settings, rt.box)
        _Process.engine = Engine(rt.sessions, _Process.pool, engine_settings(rt))
        _Process.rate = _shared_rate()
        _Process.loop = LoopThread("pushgate-celery-loop").start()
        _Process.pruned_at = time.monotonic()


def _shared_rate() -> distributed.SharedRate | None:
    url = rt.settings.redis_url or (rt.settings.broker_url if rt.settings.broker_url.startswith("redis") else "")
    if not url:
        log.warning("no Redis (PUSHGATE_REDIS_URL): a delivery's rate_per_second is not shared across workers")
        return None
    from redis import Redis

    return distributed.SharedRate(Redis.from_url(url, socket_timeout=5))


def _here() -> tuple[Engine, LoopThread]:
    if _Process.loop is None:
        _start_process()
    engine, loop = _Process.engine, _Process.loop
    assert engine is not None and loop is not None
    if time.monotonic() - _Process.pruned_at > PRUNE_SECONDS:
        _Process.pruned_at = time.monotonic()
        engine.running()  # forgets the templates and caches of deliveries that ended elsewhere
    return engine, loop


@worker_process_init.connect
def _child_started(**_: Any) -> None:
    # A prefork child: the parent's database connections are not its own to use.
    rt.engine.dispose(close=False)
    _start_process()


@worker_process_shutdown.connect
def _child_stopping(**_: Any) -> None:
    loop, pool = _Process.loop, _Process.pool
    if loop is not None:
        loop.stop(pool.close if pool is not None else None)
        _Process.loop = None


def _enqueue(delivery_id: int, step: distributed.Next) -> None:
    countdown = step.countdown if step.countdown > 0 else None
    send_batch.apply_async((delivery_id, step.platform), countdown=countdown, queue=PUSH_QUEUE)


# Any failure (database, broker, a bug) retries the task with back-off, forever: a batch task
# that gave up would end its chain, and a delivery with no chain left would never finish.
_RETRIED: dict[str, Any] = {
    "autoretry_for": (Exception,),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": None,
}


@app.task(name=START_DELIVERY, **_RETRIED)
def start_delivery(delivery_id: int) -> None:
    engine, _loop = _here()
    for step in distributed.start(engine, delivery_id, rt.settings.celery_batches_in_flight):
        _enqueue(delivery_id, step)


@app.task(name=SEND_BATCH, **_RETRIED)
def send_batch(delivery_id: int, platform: str | None) -> None:
    engine, loop = _here()
    step = distributed.step(engine, loop, delivery_id, platform, _Process.rate)
    if step is not None:
        _enqueue(delivery_id, step)


@app.task(name=TICK, **_RETRIED)
def tick() -> None:
    engine, _loop = _here()
    for delivery_id in engine.start_due():
        for step in distributed.seed(engine, delivery_id, rt.settings.celery_batches_in_flight):
            _enqueue(delivery_id, step)


# Acknowledged when taken, not after: a sync run may outlast RabbitMQ's consumer_timeout and
# Redis's visibility timeout, and claim_firing would refuse its redelivery anyway.
@app.task(name=SYNC_JOB, acks_late=False)
def sync_job(job: str) -> None:
    cron = schedules(rt.settings).get(job)
    if cron is None:
        return  # the setting was removed since the beat read it
    fire_at: datetime = croniter(cron, utcnow()).get_prev(datetime)
    if not claim_firing(rt.sessions, job, fire_at):
        return
    try:
        run_now(job, settings=rt.settings, sessions=rt.sessions, trigger="schedule")
    except RunInProgress:
        log.warning("sync %s still running at its %s firing; skipped", job, fire_at)
