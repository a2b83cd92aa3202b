"""The sync run framework, the job registry, the single-run guard and the scheduler, with small
jobs defined here (the real jobs have their own tests under tests/sync/segments and tests/sync/profiles)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.errors import NotFound
from store.models import Audience, SyncReject, SyncRun, SyncState
from sync import runs, service
from sync.runs import FileOutcome, RunContext, SyncError
from tests.conftest import runtime_of
from tests.waiting import wait_until

# -- jobs used by these tests (registered in service.JOBS by the fixture) ------------------------

RELEASE = threading.Event()
ENTERED = threading.Event()


def job_two_files(context: RunContext) -> None:
    """One file applied with two rejected rows; one file whose transaction is rolled back."""
    with context.sessions.begin() as session:
        session.add(Audience(name="kept", segment_id="seg-kept"))
        context.reject(session, "a.csv", 3, "CRM-000003", "no profile with external_id CRM-000003")
        context.reject(session, "a.csv", 7, None, "empty identity")
        context.flush_rejects(session)
    context.advance(10)
    context.file(FileOutcome("a.csv", "applied", rows=10, applied=8, rejected=2))
    session = context.sessions()
    try:
        session.add(Audience(name="rolled back", segment_id="seg-gone"))
        context.reject(session, "b.csv", 1, "CRM-000001", "never stored")
        raise ValueError("unreadable")
    except ValueError:
        session.rollback()
        context.drop_rejects()
    finally:
        session.close()
    context.file(FileOutcome("b.csv", "failed", rows=5, reason="3 of 5 rows unreadable"))


def job_unreachable(context: RunContext) -> None:
    raise SyncError("cannot reach the blob service at http://127.0.0.1:9: connection refused")


def job_bug(context: RunContext) -> None:
    raise KeyError("oops")


def job_waits(context: RunContext) -> None:
    ENTERED.set()
    RELEASE.wait(10)
    context.file(FileOutcome("late.csv", "applied", rows=1, applied=1))


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(service.JOBS, "two", f"{__name__}:job_two_files")
    monkeypatch.setitem(service.JOBS, "down", f"{__name__}:job_unreachable")
    monkeypatch.setitem(service.JOBS, "bug", f"{__name__}:job_bug")
    monkeypatch.setitem(service.JOBS, "slow", f"{__name__}:job_waits")
    RELEASE.clear()
    ENTERED.clear()


def _run(app: Flask, job: str, **kwargs: Any) -> SyncRun:
    rt = runtime_of(app)
    return service.run_now(job, settings=rt.settings, sessions=rt.sessions, trigger="cli", **kwargs)


def test_a_run_records_its_files_totals_and_the_rejects_of_committed_files_only(app: Flask, jobs: None) -> None:
    progress: list[int] = []
    run = _run(app, "two", progress=progress.append)
    assert run.status == "failed"
    assert run.error == "b.csv: failed: 3 of 5 rows unreadable"
    assert run.summary["files"] == 2 and run.summary["applied_files"] == 1 and run.summary["failed_files"] == 1
    assert (run.summary["rows"], run.summary["applied"], run.summary["rejected"]) == (15, 8, 2)
    assert [d["name"] for d in run.summary["details"]] == ["a.csv", "b.csv"]
    assert progress == [10]
    assert run.ended_at is not None and run.trigger == "cli"
    with runtime_of(app).sessions() as session:
        rejects = list(runs.iter_rejects(session, run.id, chunk=1))  # chunking must not lose rows
        assert [(r.file, r.line, r.identity, r.reason) for r in rejects] == [
            ("a.csv", 3, "CRM-000003", "no profile with external_id CRM-000003"),
            ("a.csv", 7, None, "empty identity"),
        ]
        assert session.scalars(select(Audience.segment_id)).all() == ["seg-kept"]


def test_an_unreachable_source_fails_the_run_with_its_one_line_reason(app: Flask, jobs: None) -> None:
    run = _run(app, "down")
    assert run.status == "failed"
    assert run.error == "cannot reach the blob service at http://127.0.0.1:9: connection refused"


def test_a_bug_in_a_job_is_recorded_then_raised(app: Flask, jobs: None) -> None:
    with pytest.raises(KeyError):
        _run(app, "bug")
    with runtime_of(app).sessions() as session:
        run = session.scalars(select(SyncRun)).one()
        assert (run.status, run.error) == ("failed", "internal error: KeyError")


def test_an_unknown_job_is_a_404() -> None:
    with pytest.raises(NotFound, match="no sync job 'nope'"):
        service.job_function("nope")


def test_one_run_of_a_job_at_a_time_in_a_process(app: Flask, jobs: None) -> None:
    rt = runtime_of(app)
    run_id = service.start_in_background("slow", settings=rt.settings, sessions=rt.sessions, trigger="api")
    assert ENTERED.wait(5)
    with pytest.raises(service.RunInProgress):
        _run(app, "slow")
    with pytest.raises(service.RunInProgress):
        service.start_in_background("slow", settings=rt.settings, sessions=rt.sessions, trigger="api")
    RELEASE.set()
    _wait_finished(app, run_id)
    assert _run(app, "slow").status == "succeeded"  # the lock was released


def _wait_finished(app: Flask, run_id: int) -> SyncRun:
    def finished() -> SyncRun | None:
        with runtime_of(app).sessions() as session:
            run = session.get(SyncRun, run_id)
            assert run is not None
            return None if run.status == "running" else run

    return wait_until(finished, 10, interval=0.02, message=f"run {run_id} did not finish")


def test_rejects_are_written_in_chunks_inside_the_file_transaction(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "REJECT_CHUNK", 3)
    rt = runtime_of(app)
    run_id = runs.open_run(rt.sessions, "test", "cli")
    context = RunContext(run_id, rt.settings, rt.sessions)
    session = rt.sessions()
    for line in range(7):
        context.reject(session, "f.csv", line, "x" * 300, "r" * 300)
    session.rollback()  # the 6 flushed ones go with the transaction
    context.drop_rejects()
    session.close()
    with rt.sessions() as check:
        assert check.scalar(select(func.count()).select_from(SyncReject)) == 0
    with rt.sessions.begin() as session:
        context.reject(session, "f.csv", 1, "x" * 300, "r" * 300)
        context.flush_rejects(session)
    with rt.sessions() as check:
        reject = check.scalars(select(SyncReject)).one()
        assert (len(reject.identity or ""), len(reject.reason)) == (255, 255)


# -- the scheduler --------------------------------------------------------------------------------


def test_each_firing_is_claimed_once_whatever_the_number_of_processes(app: Flask) -> None:
    sessions = runtime_of(app).sessions
    first = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert service.claim_firing(sessions, "segments", first) is True
    assert service.claim_firing(sessions, "segments", first) is False  # a second process, same firing
    assert service.claim_firing(sessions, "segments", first - timedelta(hours=4)) is False  # an older one
    assert service.claim_firing(sessions, "segments", first + timedelta(hours=4)) is True
    assert service.claim_firing(sessions, "profiles", first) is True  # per job
    with sessions() as session:
        assert session.scalars(select(SyncState.stream).order_by(SyncState.stream)).all() == [
            "schedule:profiles",
            "schedule:segments",
        ]


def test_the_scheduler_starts_a_job_when_its_cron_time_comes(
    app: Flask, settings_overrides: dict[str, Any], jobs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config import load_settings

    monkeypatch.setitem(service.JOBS, "segments", f"{__name__}:job_two_files")
    settings = load_settings({**settings_overrides, "sync_segments_cron": "0 */4 * * *"})
    scheduler = service.Scheduler(settings, runtime_of(app).sessions)
    assert scheduler.crons == {"segments": "0 */4 * * *"}
    fire_at = scheduler._next["segments"]
    assert fire_at.minute == 0 and fire_at.hour % 4 == 0 and fire_at > datetime.now(UTC) - timedelta(seconds=1)
    assert scheduler.tick(fire_at - timedelta(seconds=1)) == []
    assert scheduler.tick(fire_at) == ["segments"]
    assert scheduler._next["segments"] == fire_at + timedelta(hours=4)
    with runtime_of(app).sessions() as session:
        run_id = session.scalars(select(SyncRun.id)).one()
    run = _wait_finished(app, run_id)
    assert (run.job, run.trigger) == ("segments", "schedule")
    # another process with the same schedule does not run the same firing again
    other = service.Scheduler(settings, runtime_of(app).sessions)
    other._next["segments"] = fire_at
    assert other.tick(fire_at) == []


def test_no_cron_no_scheduler_thread(app: Flask) -> None:
    rt = runtime_of(app)
    assert service.Scheduler(rt.settings, rt.sessions).start() is False


def test_a_wrong_cron_expression_stops_start_up_with_one_line(settings_overrides: dict[str, Any]) -> None:
    from core.config import load_settings
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^invalid setting PUSHGATE_SYNC_PROFILES_CRON: 'every 4h' is not a cron"):
        load_settings({**settings_overrides, "sync_profiles_cron": "every 4h"})
