"""``/api/v1/audiences`` and ``/api/v1/sync`` through HTTP, and the ``sync`` CLI group."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.api.schemas import AudienceMemberPage, AudienceOut, AudiencePage, SyncRunOut, SyncRunPage
from store.models import Audience, AudienceImport, AudienceMember, Profile, SyncFile
from sync import service
from tests.conftest import Keys, runtime_of
from tests.gateway.api.helpers import finished_run
from tests.sync import test_runs


@pytest.fixture
def audience(app: Flask) -> int:
    with runtime_of(app).sessions.begin() as session:
        profiles = [Profile(external_id=f"p{i}") for i in range(5)]
        session.add_all(profiles)
        audience = Audience(name="Lapsed buyers", segment_id="seg-1", last_import_at=datetime(2026, 11, 28, tzinfo=UTC))
        session.add(audience)
        session.flush()
        for i, profile in enumerate(profiles):
            status = ("realized", "existing", "exited")[i % 3]
            session.add(AudienceMember(audience_id=audience.id, profile_id=profile.id, status=status))
        file = SyncFile(
            job="segments", source="blob", name="dest_seg-1_20261128_120000.csv", etag="0x1", status="applied"
        )
        session.add(file)
        session.flush()
        session.add(AudienceImport(audience_id=audience.id, file_id=file.id, entered=2, existing=1, exited=2))
        session.add(Audience(name="Empty", segment_id="seg-2"))
        return audience.id


def test_audiences_list_and_detail(client: FlaskClient, keys: Keys, audience: int) -> None:
    page = client.get("/api/v1/audiences", headers=keys.viewer)
    assert page.status_code == 200
    body = AudiencePage.model_validate(page.json)
    assert [(a.name, a.size) for a in body.items] == [("Lapsed buyers", 4), ("Empty", 0)]
    assert body.items[0].files_applied is None
    one = client.get("/api/v1/audiences?segment_id=seg-2", headers=keys.viewer).json
    assert [a["name"] for a in one["items"]] == ["Empty"]
    detail = AudienceOut.model_validate(client.get(f"/api/v1/audiences/{audience}", headers=keys.viewer).json)
    assert detail.size == 4 and detail.segment_id == "seg-1"
    assert detail.files_applied is not None
    assert [(f.name, f.entered, f.existing, f.exited) for f in detail.files_applied] == [
        ("dest_seg-1_20261128_120000.csv", 2, 1, 2)
    ]


def test_audience_members_exclude_those_who_left_unless_asked(client: FlaskClient, keys: Keys, audience: int) -> None:
    current = AudienceMemberPage.model_validate(
        client.get(f"/api/v1/audiences/{audience}/members?limit=2", headers=keys.viewer).json
    )
    assert [m.external_id for m in current.items] == ["p0", "p1"] and current.next_cursor
    rest = client.get(
        f"/api/v1/audiences/{audience}/members?limit=2&cursor={current.next_cursor}", headers=keys.viewer
    ).json
    assert [m["external_id"] for m in rest["items"]] == ["p3", "p4"]
    left = client.get(f"/api/v1/audiences/{audience}/members?status=exited", headers=keys.viewer).json
    assert [(m["external_id"], m["status"]) for m in left["items"]] == [("p2", "exited")]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/audiences/999", 404, "unknown_audience"),
        ("/api/v1/audiences/999/members", 404, "unknown_audience"),
        ("/api/v1/audiences/{id}/members?status=gone", 400, None),
        ("/api/v1/audiences?limit=0", 400, None),
    ],
)
def test_audience_bad_requests(
    client: FlaskClient, keys: Keys, audience: int, path: str, status: int, code: str | None
) -> None:
    response = client.get(path.format(id=audience), headers=keys.viewer)
    assert response.status_code == status
    if code:
        assert response.json["error"] == code


def test_audiences_need_a_key(client: FlaskClient) -> None:
    assert client.get("/api/v1/audiences").status_code == 401


# -- sync runs ------------------------------------------------------------------------------------


def _wait(client: FlaskClient, keys: Keys, run_id: int) -> dict[str, Any]:
    return finished_run(client, keys.admin, run_id, timeout=10)


def test_a_run_started_over_http_is_polled_to_its_summary_and_rejects(
    client: FlaskClient, keys: Keys, test_jobs: None
) -> None:
    started = client.post("/api/v1/sync/two/run", headers=keys.admin)
    assert started.status_code == 202
    assert SyncRunOut.model_validate(started.json).trigger == "api"
    assert started.headers["Location"] == f"/api/v1/sync/runs/{started.json['id']}"
    run = SyncRunOut.model_validate(_wait(client, keys, started.json["id"]))
    assert run.status == "failed" and run.error == "b.csv: failed: 3 of 5 rows unreadable"
    assert (run.summary.applied_files, run.summary.failed_files, run.summary.rejected) == (1, 1, 2)
    rejects = client.get(f"/api/v1/sync/runs/{run.id}/rejects", headers=keys.admin)
    assert rejects.status_code == 200 and rejects.mimetype == "text/csv"
    assert rejects.get_data(as_text=True).splitlines() == [
        "file,line,identity,reason",
        "a.csv,3,CRM-000003,no profile with external_id CRM-000003",
        "a.csv,7,,empty identity",
    ]
    listed = SyncRunPage.model_validate(client.get("/api/v1/sync/runs?job=two", headers=keys.admin).json)
    assert [r.id for r in listed.items] == [run.id]
    assert client.get("/api/v1/sync/runs?job=other", headers=keys.admin).json["items"] == []


def test_sync_run_requests_that_are_refused(client: FlaskClient, keys: Keys, test_jobs: None) -> None:
    assert client.post("/api/v1/sync/two/run", headers=keys.marketer).status_code == 403
    assert client.get("/api/v1/sync/runs", headers=keys.viewer).status_code == 403
    unknown = client.post("/api/v1/sync/nope/run", headers=keys.admin)
    assert (unknown.status_code, unknown.json["error"]) == (404, "unknown_sync_job")
    bad = client.post("/api/v1/sync/two/run", headers=keys.admin, json={"retry_failed": "maybe"})
    assert bad.status_code == 400
    extra = client.post("/api/v1/sync/two/run", headers=keys.admin, json={"overwrite": True})
    assert extra.status_code == 400
    assert client.get("/api/v1/sync/runs/999", headers=keys.admin).json["error"] == "unknown_sync_run"
    assert client.get("/api/v1/sync/runs/999/rejects", headers=keys.admin).status_code == 404


def test_a_second_run_of_the_same_job_is_refused_while_the_first_goes_on(
    client: FlaskClient, keys: Keys, test_jobs: None
) -> None:
    first = client.post("/api/v1/sync/slow/run", headers=keys.admin, json={"retry_failed": True})
    assert first.status_code == 202
    assert test_runs.ENTERED.wait(5)
    second = client.post("/api/v1/sync/slow/run", headers=keys.admin)
    assert (second.status_code, second.json["error"]) == (409, "sync_run_in_progress")
    test_runs.RELEASE.set()
    assert _wait(client, keys, first.json["id"])["status"] == "succeeded"


@pytest.fixture
def test_jobs(jobs: None) -> None:
    """The jobs of tests/sync/test_runs.py."""


jobs = test_runs.jobs


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_summary_and_exit_status(app: Flask, runner: Any, monkeypatch: pytest.MonkeyPatch, test_jobs: None) -> None:
    monkeypatch.setitem(service.JOBS, "segments", f"{test_runs.__name__}:job_two_files")
    monkeypatch.setitem(service.JOBS, "profiles", f"{test_runs.__name__}:job_unreachable")
    result = runner.invoke(args=["sync", "segments"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == "applied  a.csv: 10 rows, 8 applied, 2 rejected"
    assert lines[1] == "failed   b.csv: 5 rows, 0 applied, 0 rejected (3 of 5 rows unreadable)"
    assert "files (1 applied, 1 failed, 0 blocked" in lines[2]
    assert lines[-1] == "pushgate: sync segments failed: b.csv: failed: 3 of 5 rows unreadable"
    down = runner.invoke(args=["sync", "profiles"])
    assert down.exit_code == 1
    assert (
        down.output.strip()
        .splitlines()[-1]
        .endswith("cannot reach the blob service at http://127.0.0.1:9: connection refused")
    )
    monkeypatch.setitem(service.JOBS, "segments", f"{test_runs.__name__}:job_waits")
    test_runs.RELEASE.set()
    ok = runner.invoke(args=["sync", "segments", "--retry-failed"])
    assert ok.exit_code == 0, ok.output
    assert "succeeded: 1 files (1 applied" in ok.output
