"""Starting the in-process worker next to the gateway (the embedded default: no broker).

Building the app (``wsgi.py``, :func:`gateway.app.create_app`) starts nothing: the worker and the
sync scheduler (when a ``PUSHGATE_SYNC_*_CRON`` setting is set) start explicitly, once per process,
in the process that serves, unless ``PUSHGATE_WORKER=off``:

- under gunicorn, ``gunicorn.conf.py`` starts them in each worker process once it has loaded the
  app (:func:`start_in_process_worker`) and stops them when it exits. Never in the master: under
  ``--preload`` the app is built there, and a thread started before the fork would not survive it;
- under ``flask --app wsgi run`` (or a server without that hook) they start with the first request
  the process serves (:func:`start_with_first_request`, which ``wsgi.py`` installs);
- ``flask --app wsgi worker`` runs them on their own. Other CLI commands serve no request and start
  nothing.

Several workers (one per gunicorn process, or separate processes) share deliveries safely: batches
are claimed atomically.

In Celery mode (``PUSHGATE_BROKER_URL`` set) none of this starts: web processes never send, and
a delivery created here is enqueued (:func:`delivery_created`) for the ``pushgate_celery`` workers.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass

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
        tracking_key=rt.tracking_key,
        batch_size=s.worker_batch_size,
        lease=timedelta(seconds=s.worker_lease_seconds),
        quarantine=Policy(
            soft_errors=s.quarantine_soft_errors,
            spacing=timedelta(hours=s.quarantine_error_spacing_hours),
            reset_after=timedelta(days=s.quarantine_reset_days),
        ),
    )


class _Process:
    """This process: its id, refreshed in a forked child (cheaper than ``os.getpid()`` on every
    request), and the lock of the starts."""

    pid = os.getpid()
    start_lock = threading.Lock()


#: ``app.extensions`` key of the :class:`InProcess` of an app; ``"pushgate_worker"`` holds its
#: worker (the API wakes it when a delivery is created).
IN_PROCESS = "pushgate_in_process"


def _after_fork_in_child() -> None:
    _Process.pid = os.getpid()
    _Process.start_lock = threading.Lock()  # in case another thread held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass
class InProcess:
    """The worker and scheduler one process runs for one app."""

    pid: int
    worker: Worker
    scheduler: Scheduler | None
    stopped: bool = False

    def stop(self) -> None:
        if self.stopped or self.pid != _Process.pid:  # a forked child does not own its parent's threads
            return
        self.stopped = True
        if self.scheduler is not None:
            self.scheduler.stop()
        self.worker.stop()
        log.info("in-process worker stopped in process %s", self.pid)


def running_in_process(app: Flask) -> InProcess | None:
    """The worker and scheduler this process runs for ``app``, if any (not a forked parent's)."""
    running: InProcess | None = app.extensions.get(IN_PROCESS)
    return running if running is not None and running.pid == _Process.pid and not running.stopped else None


def start_in_process_worker(app: Flask) -> Worker | None:
    """Start the worker and scheduler of ``app`` in this process, or return the running ones;
    None when ``PUSHGATE_WORKER=off``. Call it from the process that serves, after any fork; they
    stop at exit (or with :func:`stop_in_process_worker`)."""
    rt: Runtime = app.extensions["pushgate"]
    if not sends_in_process(rt):
        return None
    with _Process.start_lock:
        running = running_in_process(app)
        if running is not None:
            return running.worker
        worker = build_worker(rt)
        worker.start()
        running = InProcess(_Process.pid, worker, start_scheduler(rt))
        app.extensions[IN_PROCESS] = running
        app.extensions["pushgate_worker"] = worker
    atexit.register(running.stop)
    log.info("in-process worker started in process %s", running.pid)
    return worker


def sends_in_process(rt: Runtime) -> bool:
    """Whether serving processes run the in-process worker: not with PUSHGATE_WORKER=off, nor in
    Celery mode."""
    return rt.settings.worker == "in-process" and not rt.settings.broker_url


def delivery_created(app: Flask, delivery_id: int) -> None:
    """What the API and the console call once a delivery is committed: in Celery mode, enqueue its
    start; otherwise wake this process's in-process worker (if it runs one) to look for due
    deliveries now rather than at its next poll."""
    if app.extensions["pushgate"].settings.broker_url:
        from gateway.broker import enqueue_start  # celery only in Celery mode

        enqueue_start(app, delivery_id)
        return
    worker = app.extensions.get("pushgate_worker")
    if worker is not None:
        worker.wake()


def stop_in_process_worker(app: Flask) -> None:
    """Stop the worker and scheduler this process runs for ``app`` (nothing if it runs none)."""
    running = running_in_process(app)
    if running is not None:
        running.stop()


def start_with_first_request(app: Flask) -> None:
    """Start the in-process worker with the first request each process serves (``flask run``, or a
    server without ``gunicorn.conf.py``'s hook); a CLI command serves none and starts nothing."""
    if not sends_in_process(app.extensions["pushgate"]):
        return

    @app.before_request
    def ensure_in_process_worker() -> None:
        running: InProcess | None = app.extensions.get(IN_PROCESS)
        if running is None or running.pid != _Process.pid:
            start_in_process_worker(app)


def start_scheduler(rt: Runtime) -> Scheduler | None:
    """Start the sync scheduler when a cron expression is set (each firing runs once, whatever
    the number of processes: see :mod:`sync.service`)."""
    scheduler = Scheduler(rt.settings, rt.sessions)
    return scheduler if scheduler.start() else None
