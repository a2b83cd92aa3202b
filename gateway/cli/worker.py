"""``flask --app wsgi worker``: a process that only sends deliveries and runs the sync schedules."""

from __future__ import annotations

import click

from gateway.runtime import runtime


@click.command("worker")
def worker_command() -> None:
    """Send deliveries in this process until interrupted (use PUSHGATE_WORKER=off on the servers)."""
    import signal
    import threading

    from gateway.worker import build_worker, start_scheduler
    from store.db import current_revision, head_revision, is_migrated

    engine = runtime().engine
    if not is_migrated(engine):
        raise click.ClickException(
            f"the database is at migration {current_revision(engine) or 'none'}, this pushgate needs "
            f"{head_revision()}: run flask --app wsgi db upgrade"
        )
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
