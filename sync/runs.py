"""Sync runs: one row per run of a job, its summary, and the rows it rejected.

A job (``segments``, ``profiles``, later ``logs`` and ``provision``) is a function
``job(context) -> None`` that reports what it did through its :class:`RunContext`:
``context.file(...)`` once per file taken, ``context.reject(...)`` once per refused row,
``context.advance(n)`` as rows go by (the CLI's progress bar). :func:`execute` wraps any job: it
creates the ``sync_run`` row, runs the job, and stores the summary with the outcome:

- ``succeeded``: every file was applied (rejected rows do not make a run fail);
- ``failed``: a file failed validation or was blocked by a policy, or the source could not be
  reached (:class:`SyncError`); ``error`` holds the reason, one line;
- ``refused``: a guardrail refused the run before it did anything (:class:`RunRefused`, e.g. an
  export asked again within its minimum interval); ``error`` says when it may run again.

The CLI, the API and the scheduler all call :func:`execute`, so their summaries are the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import Session, sessionmaker

from core import logs
from core.config import Settings
from core.errors import NotFound, PushgateError
from domain.paging import keyset, split_page
from store.models import SyncReject, SyncRun
from store.types import iso, utcnow

log = logging.getLogger("pushgate.sync")

#: Rejected rows are written in chunks of this many, inside the transaction of their file.
REJECT_CHUNK = 1000


class SyncError(PushgateError):
    """A run could not do its job: the source is unreachable or misconfigured. One-line message."""


class RunRefused(SyncError):
    """A guardrail refused the run before it did anything (status ``refused``). One-line message
    saying when the job may run again and how to override."""


@dataclass
class FileOutcome:
    """What happened to one file."""

    name: str
    status: str  # applied | failed | blocked | skipped
    rows: int = 0
    applied: int = 0
    rejected: int = 0
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Summary:
    """A run's summary, stored as JSON on ``sync_run.summary`` and shown by the CLI and the API."""

    files: list[FileOutcome] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        return {
            "files": sum(1 for f in self.files if f.status != "skipped"),
            "applied_files": sum(1 for f in self.files if f.status == "applied"),
            "failed_files": sum(1 for f in self.files if f.status == "failed"),
            "blocked_files": sum(1 for f in self.files if f.status == "blocked"),
            "rows": sum(f.rows for f in self.files),
            "applied": sum(f.applied for f in self.files),
            "rejected": sum(f.rejected for f in self.files),
        }

    def as_json(self) -> dict[str, Any]:
        return {**self.totals(), "details": [asdict(f) for f in self.files]}

    def problem(self) -> str | None:
        """The first failed or blocked file, as the run's one-line error; None when all went well."""
        for outcome in self.files:
            if outcome.status in ("failed", "blocked"):
                return f"{outcome.name}: {outcome.status}: {outcome.reason}"
        return None


class RunContext:
    """What a job gets: settings, sessions, and the means to report files, rejects and progress."""

    def __init__(
        self,
        run_id: int,
        settings: Settings,
        sessions: sessionmaker[Session],
        progress: Callable[[int], None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.settings = settings
        self.sessions = sessions
        self.summary = Summary()
        self.options = options or {}
        self._progress = progress
        self._rejects: list[dict[str, Any]] = []

    # -- reporting -------------------------------------------------------------------------------

    def file(self, outcome: FileOutcome) -> None:
        self.summary.files.append(outcome)
        log.info(
            "sync run %s: %s %s (%s rows, %s applied, %s rejected)%s",
            self.run_id,
            outcome.name,
            outcome.status,
            outcome.rows,
            outcome.applied,
            outcome.rejected,
            f": {outcome.reason}" if outcome.reason else "",
        )

    def advance(self, rows: int) -> None:
        if self._progress is not None and rows:
            self._progress(rows)

    def reject(self, session: Session, file: str, line: int, identity: str | None, reason: str) -> None:
        """Record a refused row in ``session`` (the file's own transaction: a file that is rolled
        back takes its rejects with it). Buffered, flushed every :data:`REJECT_CHUNK` rows."""
        self._rejects.append(
            {
                "run_id": self.run_id,
                "file": file[:1024],
                "line": line,
                "identity": None if identity is None else identity[:255],
                "reason": reason[:255],
            }
        )
        if len(self._rejects) >= REJECT_CHUNK:
            self.flush_rejects(session)

    def flush_rejects(self, session: Session) -> None:
        """Write buffered rejects; call before committing a file's transaction."""
        if self._rejects:
            session.execute(insert(SyncReject), self._rejects)
            self._rejects.clear()

    def drop_rejects(self) -> None:
        """Forget buffered rejects (the file's transaction is being rolled back)."""
        self._rejects.clear()


Job = Callable[[RunContext], None]


def open_run(sessions: sessionmaker[Session], job_name: str, trigger: str) -> int:
    """Create the ``sync_run`` row (status running); returns its id."""
    with sessions.begin() as session:
        run = SyncRun(job=job_name, trigger=trigger, status="running", summary={}, started_at=utcnow())
        session.add(run)
        session.flush()
        return run.id


def execute(
    job_name: str,
    job: Job,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    trigger: str,
    progress: Callable[[int], None] | None = None,
    options: dict[str, Any] | None = None,
    run_id: int | None = None,
) -> SyncRun:
    """Run ``job`` as a recorded run (``run_id`` from :func:`open_run`, or a new one); returns the
    finished ``sync_run`` row, detached."""
    if run_id is None:
        run_id = open_run(sessions, job_name, trigger)
    context = RunContext(run_id, settings, sessions, progress, options)
    status, error = "succeeded", None
    try:
        with logs.log_context(sync_run_id=run_id):  # the job's log lines name its run
            job(context)
        error = context.summary.problem()
        if error is not None:
            status = "failed"
    except RunRefused as exc:
        status, error = "refused", str(exc)
    except SyncError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # a bug: keep the run's record honest, then let it surface
        _finish(sessions, run_id, "failed", f"internal error: {type(exc).__name__}", context.summary)
        raise
    return _finish(sessions, run_id, status, error, context.summary)


def _finish(sessions: sessionmaker[Session], run_id: int, status: str, error: str | None, summary: Summary) -> SyncRun:
    with sessions.begin() as session:
        run = session.get(SyncRun, run_id)
        assert run is not None
        run.status, run.error, run.summary, run.ended_at = status, error, summary.as_json(), utcnow()
        session.flush()
        session.expunge(run)
    log.info("sync run %s (%s) %s%s", run_id, run.job, status, f": {error}" if error else "")
    return run


def iter_rejects(session: Session, run_id: int, chunk: int = 5000) -> Iterator[SyncReject]:
    """A run's rejected rows in file and line order, read in chunks (for the CSV download)."""
    last = 0
    while True:
        rows = session.scalars(
            select(SyncReject)
            .where(SyncReject.run_id == run_id, SyncReject.id > last)
            .order_by(SyncReject.id)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def first_rejects(session: Session, run_id: int, file: str, limit: int = 3) -> list[SyncReject]:
    """The first ``limit`` rejected rows of ``file`` in run ``run_id``, in the order they were
    refused (the CLI names them under the run's summary)."""
    stmt = select(SyncReject).where(SyncReject.run_id == run_id, SyncReject.file == file[:1024])
    return list(session.scalars(stmt.order_by(SyncReject.id).limit(limit)))


def describe(run: SyncRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "job": run.job,
        "trigger": run.trigger,
        "status": run.status,
        "summary": run.summary or {},
        "error": run.error,
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
    }


def list_query(job: str | None = None) -> Select[SyncRun]:
    stmt = select(SyncRun)
    return stmt.where(SyncRun.job == job) if job is not None else stmt


def get_run(session: Session, run_id: int) -> SyncRun:
    """The run ``run_id``; :class:`NotFound` (404, ``unknown_sync_run``) when there is none."""
    run = session.get(SyncRun, run_id) if 0 < run_id <= 2**31 - 1 else None  # larger ids cannot exist
    if run is None:
        raise NotFound(f"no sync run with id {run_id}", code="unknown_sync_run")
    return run


def newest_first(
    session: Session, *, job: str | None = None, before: int | None = None, limit: int = 50
) -> tuple[list[SyncRun], int | None]:
    """One page of runs (of one job when given), the latest first, starting below the id
    ``before`` when given (the console's pages). Returns the runs and the ``before`` of the next
    page, None on the last one."""
    found = session.scalars(keyset(list_query(job), SyncRun.id, after=before, limit=limit, descending=True)).all()
    return split_page(found, limit, lambda run: run.id)
