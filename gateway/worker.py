"""Starting the in-process worker next to the gateway (the embedded default: no broker).

``flask --app wsgi run`` and ``gunicorn wsgi:app`` start one per process unless
``PUSHGATE_WORKER=off``; ``flask --app wsgi worker`` runs one on its own. Each of them also starts
the sync scheduler when a ``PUSHGATE_SYNC_*_CRON`` setting is set. Several workers (one per
gunicorn process, or separate processes) share deliveries safely: batches are claimed atomically.
"""

from __future__ import annotations

import logging

import click
from flask import Flask

from gateway.runtime import Runtime
from push.engine import Engine, EngineSettings
from push.providers.pool import ProviderPool
from push.worker import Worker
from sync.service import Scheduler

log = logging.getLogger("pushgate.worker")


def build_worker(rt: Runtime) -> Worker:
    pool_holder: list[ProviderPool] = []

    def make_engine() -> Engine:
        pool = ProviderPool(rt.settings, rt.box)
        pool_holder.append(pool)
        return Engine(rt.sessions, pool, engine_settings(rt))

    async def close() -> None:
        for pool in pool_holder:
            await pool.close()

    return Worker(
        make_engine,
        on_stop=close,
        concurrency=rt.settings.worker_concurrency,
        poll_interval=rt.settings.worker_poll_seconds,
    )


def engine_settings(rt: Runtime) -> EngineSettings:
    from datetime import timedelta

    from domain.quarantine import Policy

    s = rt.settings
    return EngineSettings(
        batch_size=s.worker_batch_size,
        lease=timedelta(seconds=s.worker_lease_seconds),
        quarantine=Policy(
            soft_errors=s.quarantine_soft_errors,
            spacing=timedelta(hours=s.quarantine_error_spacing_hours),
            reset_after=timedelta(days=s.quarantine_reset_days),
        ),
    )


def serving() -> bool:
    """True when this process serves HTTP: under gunicorn (no click context) or ``flask run``."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    while ctx is not None:
        if ctx.info_name == "run":
            return True
        ctx = ctx.parent
    return False


def start_in_process_worker(app: Flask) -> Worker | None:
    rt: Runtime = app.extensions["pushgate"]
    if rt.settings.worker != "in-process" or not serving():
        return None
    worker = build_worker(rt)
    worker.start()
    app.extensions["pushgate_worker"] = worker
    log.info("in-process worker started")
    start_scheduler(rt)
    return worker


def start_scheduler(rt: Runtime) -> Scheduler | None:
    """Start the sync scheduler when a cron expression is set (each firing runs once, whatever
    the number of processes: see :mod:`sync.service`)."""
    scheduler = Scheduler(rt.settings, rt.sessions)
    return scheduler if scheduler.start() else None
