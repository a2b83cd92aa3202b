"""Running sync jobs by name, from the CLI, the API and the in-process scheduler.

- :data:`JOBS` names the jobs; each is a ``job(context)`` function (see :mod:`sync.runs`).
- One run of a job at a time per process: :func:`run_now` and :func:`start_in_background` refuse
  with :class:`RunInProgress` while another run of the same job is going on here. Across
  processes the ledger (``sync_file``, unique per file and ETag) is what keeps a file from being
  applied twice; a second process's transaction for the same file fails and rolls back.
- :class:`Scheduler` fires jobs on the cron expressions of the settings
  (``PUSHGATE_SYNC_SEGMENTS_CRON``, ``_PROFILES_CRON``, ``_LOGS_CRON``). Each firing is claimed in
  ``sync_state`` (stream ``schedule:<job>``) with a compare-and-set, so with several gunicorn
  processes each firing runs once.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.errors import Conflict, NotFound
from store.models import SyncRun
from store.queries import state
from store.types import utcnow
from sync.runs import Job, execute, open_run

log = logging.getLogger("pushgate.sync")

#: Job name -> "module:function". Imported on use, so a job's libraries load only when it runs.
JOBS: dict[str, str] = {
    "segments": "sync.segments:run",
    "profiles": "sync.profiles:run",
    "logs": "sync.export:run",
    "provision": "sync.provision:run",
}

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class RunInProgress(Conflict):
    def __init__(self, job: str) -> None:
        super().__init__(f"a {job} run is already in progress in this process", code="sync_run_in_progress")


def job_function(name: str) -> Job:
    """The job called ``name``; :class:`NotFound` (404) for an unknown name."""
    target = JOBS.get(name)
    if target is None:
        raise NotFound(f"no sync job {name!r}; jobs: {', '.join(sorted(JOBS))}", code="unknown_sync_job")
    module, function = target.split(":")
    job: Job = getattr(importlib.import_module(module), function)
    return job


def _lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def run_now(
    name: str,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    trigger: str,
    progress: Callable[[int], None] | None = None,
    options: dict[str, Any] | None = None,
) -> SyncRun:
    """Run job ``name`` in this thread and return its finished run."""
    job = job_function(name)
    lock = _lock(name)
    if not lock.acquire(blocking=False):
        raise RunInProgress(name)
    try:
        return execute(
            name, job, settings=settings, sessions=sessions, trigger=trigger, progress=progress, options=options
        )
    finally:
        lock.release()


def start_in_background(
    name: str,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    trigger: str,
    options: dict[str, Any] | None = None,
) -> int:
    """Open a run of job ``name`` and run it on a thread; returns the run id at once."""
    job = job_function(name)
    lock = _lock(name)
    if not lock.acquire(blocking=False):
        raise RunInProgress(name)
    try:
        run_id = open_run(sessions, name, trigger)
    except BaseException:
        lock.release()
        raise

    def work() -> None:
        try:
            execute(name, job, settings=settings, sessions=sessions, trigger=trigger, options=options, run_id=run_id)
        except Exception:
            log.exception("sync run %s (%s) failed with an internal error", run_id, name)
        finally:
            lock.release()

    threading.Thread(target=work, name=f"pushgate-sync-{name}-{run_id}", daemon=True).start()
    return run_id


# -- the in-process scheduler ---------------------------------------------------------------------


def schedules(settings: Settings) -> dict[str, str]:
    """Job name -> cron expression, for the jobs that have one."""
    configured = {
        "segments": settings.sync_segments_cron,
        "profiles": settings.sync_profiles_cron,
        "logs": settings.sync_logs_cron,
    }
    return {job: cron for job, cron in configured.items() if cron}


def claim_firing(sessions: sessionmaker[Session], job: str, fire_at: datetime) -> bool:
    """True for exactly one caller per (job, firing time), whatever the number of processes."""
    stream, mark = f"schedule:{job}", fire_at.isoformat()
    with sessions.begin() as session:
        if state.insert_if_absent(session, stream, watermark=mark, last_run_at=utcnow()):
            return True
        taken = state.get_value(session, stream)
        if taken is not None and taken >= mark:
            return False
        return state.compare_and_set(session, stream, "watermark", taken, watermark=mark, last_run_at=utcnow())


class Scheduler:
    """Fires the configured cron jobs from a daemon thread (times in UTC)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], tick_seconds: float = 15.0) -> None:
        self.settings = settings
        self.sessions = sessions
        self.tick_seconds = tick_seconds
        self.crons = schedules(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = utcnow()
        self._next = {job: _next_fire(cron, now) for job, cron in self.crons.items()}

    def start(self) -> bool:
        if not self.crons:
            return False
        self._thread = threading.Thread(target=self._main, name="pushgate-scheduler", daemon=True)
        self._thread.start()
        log.info("sync scheduler: %s", ", ".join(f"{job} at '{cron}'" for job, cron in self.crons.items()))
        return True

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _main(self) -> None:
        while not self._stop.is_set():
            self.tick(utcnow())
            self._stop.wait(self.tick_seconds)

    def tick(self, now: datetime) -> list[str]:
        """Start every job whose firing time has come; returns the jobs started."""
        started = []
        for job, fire_at in list(self._next.items()):
            if fire_at > now:
                continue
            self._next[job] = _next_fire(self.crons[job], now)
            try:
                if not claim_firing(self.sessions, job, fire_at):
                    continue
                start_in_background(job, settings=self.settings, sessions=self.sessions, trigger="schedule")
                started.append(job)
            except RunInProgress:
                log.warning("sync scheduler: %s still running at its %s firing; skipped", job, fire_at)
            except Exception:
                log.exception("sync scheduler: could not start %s", job)
        return started


def _next_fire(cron: str, after: datetime) -> datetime:
    fire: datetime = croniter(cron, after.replace(second=0, microsecond=0)).get_next(datetime)
    if fire <= after:  # croniter counts from the minute; never fire for a moment already past
        fire = croniter(cron, fire + timedelta(seconds=1)).get_next(datetime)
    return fire
