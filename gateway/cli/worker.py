"""``flask --app wsgi worker``: a process that only sends deliveries and runs the sync schedules.

In Celery mode (``PUSHGATE_BROKER_URL`` set) it becomes ``celery -A pushgate_celery worker -Q
push,sync`` (the process is replaced by it; further arguments go to Celery, e.g. ``-c 4`` or
``-Q push``).
"""

from __future__ import annotations

import click

from gateway.runtime import runtime


@click.command("worker", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker_command(celery_args: tuple[str, ...]) -> None:
    """Send deliveries in this process until interrupted (use PUSHGATE_WORKER=off on the servers).
    With PUSHGATE_BROKER_URL set, start a Celery worker instead (extra arguments go to it)."""
    import os
    import signal
    import sys
    import threading

    from gateway.worker import build_worker, start_scheduler
    from store.db import current_revision, head_revision, is_migrated

    engine = runtime().engine
    if not is_migrated(engine):
        raise click.ClickException(
            f"the database is at migration {current_revision(engine) or 'none'}, this pushgate needs "
            f"{head_revision()}: run flask --app wsgi db upgrade"
        )
    if runtime().settings.broker_url:
        named = any(a in ("-Q", "--queues") or a.startswith("--queues=") for a in celery_args)
        queues = [] if named else ["-Q", "push,sync"]
        argv = [sys.executable, "-m", "celery", "-A", "pushgate_celery", "worker", *queues, *celery_args]
        engine.dispose()
        os.execv(sys.executable, argv)  # noqa: S606  (this process becomes the worker: signals reach it)
    if celery_args:
        raise click.UsageError(f"unexpected arguments {' '.join(celery_args)} (they are Celery's, for Celery mode)")
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    worker = build_worker(runtime())
    worker.start()
    scheduler = start_scheduler(runtime())
    click.echo("worker running; Ctrl-C stops it")
    done.wait()
    if scheduler is not None:
        scheduler.stop()
    worker.stop()
