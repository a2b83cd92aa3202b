"""gunicorn settings of the gateway: ``gunicorn -c gunicorn.conf.py wsgi:app -w 4 -b 0.0.0.0:8000``.

gunicorn also reads ``./gunicorn.conf.py`` by itself when started in this folder; ``-c`` names it
from anywhere. Its hooks run the in-process worker (``PUSHGATE_WORKER=in-process``, the default)
in every worker process: started once the worker has loaded the app, stopped when it exits. Never
in the master, so ``--preload`` works: there the app is built in the master, and a thread started
before the fork would be lost in the forked workers. Other settings come from the command line or
``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

from typing import Any


def _pushgate_app(worker: Any) -> Any:
    """The gateway this worker serves, or None for another app (e.g. a benchmark's baseline)."""
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", None)
    return app if isinstance(extensions, dict) and "pushgate" in extensions else None


def post_worker_init(worker: Any) -> None:
    app = _pushgate_app(worker)
    if app is None:
        return
    from gateway.worker import start_in_process_worker

    if worker.cfg.preload_app:
        # Built in the master: leave the master's pooled connections (if any) to it.
        app.extensions["pushgate"].engine.dispose(close=False)
    start_in_process_worker(app)


def worker_exit(server: Any, worker: Any) -> None:
    app = _pushgate_app(worker)
    if app is not None:
        from gateway.worker import stop_in_process_worker

        stop_in_process_worker(app)
