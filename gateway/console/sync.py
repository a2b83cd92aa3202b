"""Console: sync runs (``/console/sync-runs/``): the runs, the latest first, a run's summary and
its rejected rows, and "Run now".

Everyone signed in reads the runs and downloads a run's rejects as CSV: the same bytes as
``GET /api/v1/sync/runs/{id}/rejects`` (:func:`gateway.spreadsheet.rejects_csv`, cells that a
spreadsheet would run as formulas escaped). "Run now" needs the admin role and starts the job
exactly as ``POST /api/v1/sync/{job}/run`` does: :func:`sync.service.start_in_background`, one run
of a job at a time per process, recorded with the trigger ``console``. The view then waits a
moment for the run: a job whose settings are missing (no Azure Blob, sFTP or Platform
configuration) ends at once, and its reason is shown as the page's message instead of a run that
merely looks started.
"""

from __future__ import annotations

import logging
import time
from itertools import islice
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from core.errors import ClientError
from domain.fields import ID_MAX
from gateway.console.access import current_user, requires
from gateway.http import query_choice, query_int
from gateway.runtime import db, runtime
from gateway.spreadsheet import download, rejects_csv
from store.models import SyncRun
from sync import runs, service

bp = Blueprint("sync", __name__, url_prefix="/sync-runs")
log = logging.getLogger("pushgate.console")

PAGE_SIZE = 50
#: Rejected rows listed on a run's page; the CSV has them all.
FIRST_REJECTS = 20
#: How long "Run now" waits for a run to end before showing it as going on (a job that cannot
#: reach its source or lacks its settings ends well within this).
SETTLE_SECONDS = 3.0
JOB_LABELS = {
    "segments": "segments (Azure Blob exports to audiences)",
    "profiles": "profiles (sFTP inbox to profiles)",
    "logs": "logs (broadLog, trackingLog, quarantine, preferences to the Platform)",
    "provision": "provision (schemas and datasets in the Platform)",
}
STATUS_LABELS = {"running": "Running", "succeeded": "Succeeded", "failed": "Failed", "refused": "Refused"}


def _jobs() -> list[str]:
    """The jobs the API can start, the usual ones in the order data flows, then any other."""
    return [name for name in JOB_LABELS if name in service.JOBS] + sorted(set(service.JOBS) - set(JOB_LABELS))


def _index(errors: dict[str, str] | None = None, values: dict[str, object] | None = None) -> str:
    session = db()
    job = query_choice("job", tuple(service.JOBS))
    before = query_int("before", 0, minimum=0, maximum=ID_MAX)
    found, next_before = runs.newest_first(session, job=job, before=before or None, limit=PAGE_SIZE)
    chosen: dict[str, Any] = {"job": job} if job else {}
    return render_template(
        "console/sync/index.html",
        title="Sync runs",
        runs=found,
        jobs=_jobs(),
        job_labels=JOB_LABELS,
        job_filter=[("", "All jobs")] + [(name, name) for name in _jobs()],
        chosen=chosen,
        statuses=STATUS_LABELS,
        errors=errors or {},
        values=values or {},
        next_url=url_for(".index", **chosen, before=next_before) if next_before else None,
        first_url=url_for(".index", **chosen) if before else None,
    )


@bp.get("/")
@requires("viewer")
def index() -> str:
    return _index()


@bp.get("/<int:run_id>")
@requires("viewer")
def run(run_id: int) -> str:
    session = db()
    found = runs.get_run(session, run_id)
    rejects = list(islice(runs.iter_rejects(session, run_id, chunk=FIRST_REJECTS), FIRST_REJECTS))
    return render_template(
        "console/sync/run.html",
        title=f"Sync run {run_id}",
        run=found,
        summary=found.summary or {},
        rejects=rejects,
        statuses=STATUS_LABELS,
    )


@bp.get("/<int:run_id>/rejects.csv")
@requires("viewer")
def rejects(run_id: int) -> Response:
    runs.get_run(db(), run_id)
    response = download(rejects_csv(runtime().sessions, run_id), f"sync-run-{run_id}-rejects.csv")
    response.headers["Cache-Control"] = "no-store"  # identities of people, like the pages
    return response


@bp.post("/run")
@requires("admin")
def run_now() -> Response | tuple[str, int]:
    job = request.form.get("job", "")
    values: dict[str, object] = {
        "job": job,
        "retry_failed": bool(request.form.get("retry_failed")),
        "force": bool(request.form.get("force")),
    }
    if job not in service.JOBS:
        return _index({"job": "Choose one of the jobs listed."}, values), 400
    rt = runtime()
    options = {"retry_failed": values["retry_failed"], "force": values["force"]}
    try:
        run_id = service.start_in_background(
            job, settings=rt.settings, sessions=rt.sessions, trigger="console", options=options
        )
    except ClientError as exc:  # a run of this job is going on in this process
        return _index({"job": exc.message[:1].upper() + exc.message[1:] + "."}, values), exc.status
    user = current_user()
    log.info("sync run %s (%s) started by console user %s", run_id, job, user.id if user else None)
    settled = _settle(run_id)
    if settled.status == "running":
        flash(f"The {job} run has started; it goes on in the background.", "success")
    elif settled.status == "succeeded":
        flash(f"The {job} run succeeded.", "success")
    else:
        flash(f"The {job} run {settled.status}: {settled.error or 'see its files below'}", "error")
    return redirect(url_for(".run", run_id=run_id), 303)


def _settle(run_id: int) -> SyncRun:
    """The run once it has ended, or as it is after :data:`SETTLE_SECONDS`; read in sessions of
    its own, since the job's thread commits its outcome in another."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        with runtime().sessions() as session:
            found = runs.get_run(session, run_id)
            session.expunge(found)
        if found.status != "running" or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)
