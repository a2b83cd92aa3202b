"""The console's Sync runs pages: the runs, the latest first; a run's summary, first rejects and
CSV (the API's bytes, formulas escaped); "Run now" for admins only, and what it says when a job's
settings are missing."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import func, select

from gateway.console import sync as page
from store.models import SyncRun
from sync import service
from sync.runs import FileOutcome, RunContext
from tests.conftest import Keys, runtime_of
from tests.gateway.console.conftest import ConsoleClient
from tests.sync import test_runs

FORMULA = "=cmd|' /C calc'!A0"
jobs = test_runs.jobs


def job_hostile(context: RunContext) -> None:
    """A profile file whose rejected identities are spreadsheet formulas."""
    with context.sessions.begin() as session:
        context.reject(session, "profiles_0412.csv", 2, FORMULA, "no profile with external_id " + FORMULA)
        context.reject(session, "profiles_0412.csv", 3, "+33612345678", "not an e-mail address: @example")
        context.reject(session, "profiles_0412.csv", 4, "CRM-000004", "-1 is not a valid birth year")
        context.flush_rejects(session)
    context.file(FileOutcome("profiles_0412.csv", "applied", rows=4, applied=1, rejected=3))


@pytest.fixture
def test_jobs(jobs: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(service.JOBS, "hostile", f"{__name__}:job_hostile")


def _run(app: Flask, job: str) -> SyncRun:
    rt = runtime_of(app)
    return service.run_now(job, settings=rt.settings, sessions=rt.sessions, trigger="cli")


def _count(app: Flask) -> int:
    with runtime_of(app).sessions() as session:
        return int(session.scalar(select(func.count()).select_from(SyncRun)) or 0)


def test_runs_are_listed_latest_first_with_their_counts(
    app: Flask, console_as: Callable[[str], ConsoleClient], test_jobs: None
) -> None:
    first, second = _run(app, "two"), _run(app, "down")
    response = console_as("viewer").get("/console/sync-runs/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.index(f">Run {second.id}</a>") < html.index(f">Run {first.id}</a>")
    for text in ("Failed", "b.csv: failed: 3 of 5 rows unreadable", "connection refused", ">15<", ">8<"):
        assert text in html, text
    only = console_as("viewer").get("/console/sync-runs/?job=down").get_data(as_text=True)
    assert f">Run {second.id}</a>" in only and f">Run {first.id}</a>" not in only


def test_pages_of_runs(
    app: Flask, console_as: Callable[[str], ConsoleClient], test_jobs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = [_run(app, "down").id for _ in range(3)]
    monkeypatch.setattr(page, "PAGE_SIZE", 2)
    viewer = console_as("viewer")
    first = viewer.get("/console/sync-runs/").get_data(as_text=True)
    assert f">Run {made[0]}</a>" not in first
    assert f'href="/console/sync-runs/?before={made[1]}">Next page</a>' in first
    second = viewer.get(f"/console/sync-runs/?before={made[1]}").get_data(as_text=True)
    assert f">Run {made[0]}</a>" in second and "Next page" not in second


def test_a_run_page_shows_its_files_and_first_rejects(
    app: Flask, console_as: Callable[[str], ConsoleClient], test_jobs: None
) -> None:
    run = _run(app, "two")
    response = console_as("viewer").get(f"/console/sync-runs/{run.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for text in (
        f"Sync run {run.id}: two",
        "b.csv: failed: 3 of 5 rows unreadable",
        "a.csv",
        "3 of 5 rows unreadable",
        "CRM-000003",
        "no profile with external_id CRM-000003",
        "empty identity",
        f'href="/console/sync-runs/{run.id}/rejects.csv"',
    ):
        assert text in html, text
    assert "never stored" not in html  # the rejects of a rolled-back file are gone with it


def test_the_rejects_csv_is_the_apis_with_formulas_escaped(
    app: Flask, console_as: Callable[[str], ConsoleClient], keys: Keys, test_jobs: None
) -> None:
    run = _run(app, "hostile")
    response = console_as("viewer").get(f"/console/sync-runs/{run.id}/rejects.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="sync-run-{run.id}-rejects.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [
        ["file", "line", "identity", "reason"],
        ["profiles_0412.csv", "2", "'" + FORMULA, "no profile with external_id " + FORMULA],
        ["profiles_0412.csv", "3", "'+33612345678", "not an e-mail address: @example"],
        ["profiles_0412.csv", "4", "CRM-000004", "'-1 is not a valid birth year"],
    ]
    api = app.test_client().get(f"/api/v1/sync/runs/{run.id}/rejects", headers=keys.admin)
    assert api.get_data() == response.get_data()
    html = console_as("viewer").get(f"/console/sync-runs/{run.id}").get_data(as_text=True)
    assert "=cmd|&#39; /C calc&#39;!A0" in html  # shown as text on the page, escaped as HTML


@pytest.mark.parametrize("path", ["/console/sync-runs/999999", "/console/sync-runs/999999/rejects.csv"])
def test_an_unknown_run_is_a_404_page(console_as: Callable[[str], ConsoleClient], path: str) -> None:
    response = console_as("viewer").get(path)
    assert response.status_code == 404 and "no sync run with id 999999" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["viewer", "marketer"])
def test_run_now_is_for_admins_only(
    app: Flask, console_as: Callable[[str], ConsoleClient], test_jobs: None, role: str
) -> None:
    user = console_as(role)
    html = user.get("/console/sync-runs/").get_data(as_text=True)
    assert "Run now" not in html and "/console/sync-runs/run" not in html
    response = user.post("/console/sync-runs/run", {"job": "two"})
    assert response.status_code == 403 and "this needs the admin role" in response.get_data(as_text=True)
    assert _count(app) == 0


def test_an_admin_runs_a_job_now_and_reads_its_outcome(
    app: Flask, console_as: Callable[[str], ConsoleClient], test_jobs: None
) -> None:
    admin = console_as("admin")
    html = admin.get("/console/sync-runs/").get_data(as_text=True)
    assert ">Run now</button>" in html and '<option value="segments">' in html
    response = admin.post("/console/sync-runs/run", {"job": "two"})
    assert response.status_code == 303
    with runtime_of(app).sessions() as session:
        run = session.scalars(select(SyncRun)).one()
    assert response.headers["Location"] == f"/console/sync-runs/{run.id}"
    assert (run.job, run.trigger, run.status) == ("two", "console", "failed")
    shown = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "The two run failed: b.csv: failed: 3 of 5 rows unreadable" in shown
    assert "CRM-000003" in shown


@pytest.mark.parametrize(
    ("job", "missing"),
    [
        ("segments", "PUSHGATE_SEGMENTS_IDENTITY_COLUMN is not set: name the export column matched to profiles"),
        ("profiles", "sFTP is not configured: set PUSHGATE_SFTP_HOST"),
        ("logs", "PUSHGATE_AEP_CLIENT_ID is not set"),
        ("provision", "PUSHGATE_AEP_CLIENT_ID is not set"),
    ],
)
def test_a_job_without_its_settings_says_what_is_missing(
    app: Flask, console_as: Callable[[str], ConsoleClient], job: str, missing: str
) -> None:
    response = console_as("admin").post("/console/sync-runs/run", {"job": job}, follow_redirects=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"The {job} run failed: {missing}" in html  # the flash message
    assert f'class="error run-error" role="alert">{missing}' in html  # and the run's own error


def test_run_now_refuses_an_unknown_job_and_a_second_run_of_the_same_job(
    app: Flask, console_as: Callable[[str], ConsoleClient], test_jobs: None
) -> None:
    admin = console_as("admin")
    unknown = admin.post("/console/sync-runs/run", {"job": "nope"})
    assert unknown.status_code == 400 and "Choose one of the jobs listed." in unknown.get_data(as_text=True)
    assert _count(app) == 0
    started = admin.post("/console/sync-runs/run", {"job": "slow"})
    assert started.status_code == 303
    assert test_runs.ENTERED.wait(5)
    again = admin.post("/console/sync-runs/run", {"job": "slow", "retry_failed": "1"})
    assert again.status_code == 409
    html = again.get_data(as_text=True)
    assert "A slow run is already in progress in this process." in html
    assert 'name="retry_failed" value="1" checked' in html  # the form keeps what was chosen
    test_runs.RELEASE.set()
    page_after = admin.get(started.headers["Location"]).get_data(as_text=True)
    assert "Running" in page_after or "Succeeded" in page_after
