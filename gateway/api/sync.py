"""``/api/v1/sync``: run sync jobs and read their runs (admin only).

``POST /sync/{job}/run`` starts the job on a background thread and answers 202 with the run
(status ``running``) and its Location; poll ``GET /sync/runs/{id}`` for the summary. Rejected
rows of a run download as CSV from ``GET /sync/runs/{id}/rejects``.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from core.errors import NotFound
from gateway.api.common import query_text
from gateway.api.pagination import page_query, paginate
from gateway.api.schemas import SyncRunOut, SyncRunPage, SyncRunRequest
from gateway.auth import requires
from gateway.http import json_body
from gateway.openapi import operation
from gateway.runtime import db, runtime
from gateway.spreadsheet import download, rejects_csv
from store.models import SyncRun
from sync import runs, service

bp = Blueprint("sync", __name__)
#: A run is created when it starts: created_at is accepted as the lists' common name of that order.
RUN_SORTS = ("started_at", "created_at", "id")


@bp.post("/sync/<job>/run")
@operation(
    "Start a sync job (segments, profiles, logs, provision)",
    tag="sync",
    body=SyncRunRequest,
    response=SyncRunOut,
    status=202,
    description="The run goes on in the background: poll GET /api/v1/sync/runs/{id}. 409 while a run of the "
    "same job is in progress in this process. The body may be empty. A logs run asked within the export "
    "interval ends refused (its error says when it may run again) unless force is true.",
)
@requires("admin", every_app=True)
def start(job: str) -> tuple[Response, int]:
    options = json_body(SyncRunRequest) if request.content_length else SyncRunRequest()
    rt = runtime()
    run_id = service.start_in_background(
        job, settings=rt.settings, sessions=rt.sessions, trigger="api", options=options.model_dump()
    )
    run = db().get(SyncRun, run_id)
    assert run is not None
    response = jsonify(runs.describe(run))
    response.headers["Location"] = f"/api/v1/sync/runs/{run_id}"
    return response, 202


@bp.get("/sync/runs")
@operation(
    "List sync runs, newest first",
    tag="sync",
    response=SyncRunPage,
    query={**page_query(RUN_SORTS, newest_first=True), "job": ("string", "only runs of this job")},
)
@requires("admin", every_app=True)
def list_runs() -> Response:
    stmt = runs.list_query(query_text("job", 32))
    page = paginate(
        db(), stmt, SyncRun.id, lambda rows: [runs.describe(r) for r in rows], sorts=RUN_SORTS, newest_first=True
    )
    return jsonify(page)


@bp.get("/sync/runs/<int:run_id>")
@operation("A sync run and its summary", tag="sync", response=SyncRunOut)
@requires("admin", every_app=True)
def get_run(run_id: int) -> Response:
    return jsonify(runs.describe(_run(run_id)))


@bp.get("/sync/runs/<int:run_id>/rejects")
@operation(
    "A sync run's rejected rows as CSV (file, line, identity, reason)",
    tag="sync",
    response_media_type="text/csv",
)
@requires("admin", every_app=True)
def get_rejects(run_id: int) -> Response:
    _run(run_id)
    return download(rejects_csv(runtime().sessions, run_id), f"sync-run-{run_id}-rejects.csv")


def _run(run_id: int) -> SyncRun:
    run = db().get(SyncRun, run_id)
    if run is None:
        raise NotFound(f"no sync run with id {run_id}", code="unknown_sync_run")
    return run
