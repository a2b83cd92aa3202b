"""``flask --app wsgi sync ...``: the lines that name a file's refused rows, and ``sync rejects``."""

from __future__ import annotations

from typing import Any

import pytest

from sync import service
from sync.runs import FileOutcome, RunContext
from tests.sync import test_runs


def job_refusing_rows(context: RunContext) -> None:
    """One file applied with five rows refused; one that failed whole, keeping examples."""
    with context.sessions.begin() as session:
        for line in (4, 9, 12, 15, 21):
            context.reject(session, "profiles-2026-12-01.csv", line, f"CRM-{line}", f"bad e-mail on row {line}")
        context.flush_rejects(session)
    context.file(FileOutcome("profiles-2026-12-01.csv", "applied", rows=30, applied=25, rejected=5))
    examples = [f"line {n}: unreadable row: 2 fields, expected 5" for n in (2, 3, 5, 8)]
    reason = "4 of 10 rows unreadable (more than 1.00%)"
    context.file(
        FileOutcome("profiles-2026-12-02.csv", "failed", rows=10, reason=reason, details={"examples": examples})
    )


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(service.JOBS, "profiles", f"{__name__}:job_refusing_rows")
    monkeypatch.setitem(service.JOBS, "segments", f"{test_runs.__name__}:job_two_files")


def test_failure_lines_name_the_first_refused_rows(runner: Any, jobs: None) -> None:
    result = runner.invoke(args=["sync", "profiles"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    run_id = int(lines[2].split()[1])
    assert lines[3:] == [
        "rejected 5 rows of profiles-2026-12-01.csv: line 4: bad e-mail on row 4; line 9: bad e-mail on row 9; "
        "line 12: bad e-mail on row 12; ...",
        "refused rows of profiles-2026-12-02.csv: line 2: unreadable row: 2 fields, expected 5; "
        "line 3: unreadable row: 2 fields, expected 5; line 5: unreadable row: 2 fields, expected 5",
        f"all rejected rows: flask --app wsgi sync rejects {run_id} (CSV) or GET /api/v1/sync/runs/{run_id}/rejects",
        "pushgate: sync profiles failed: profiles-2026-12-02.csv: failed: 4 of 10 rows unreadable (more than 1.00%)",
    ]


def test_every_shown_reject_when_there_are_few(runner: Any, jobs: None) -> None:
    lines = runner.invoke(args=["sync", "segments"]).output.strip().splitlines()
    assert (
        lines[3] == "rejected 2 rows of a.csv: line 3: no profile with external_id CRM-000003; line 7: empty identity"
    )


def test_sync_rejects_prints_the_csv(runner: Any, jobs: None) -> None:
    output = runner.invoke(args=["sync", "segments"]).output
    run_id = output.split("flask --app wsgi sync rejects ")[1].split()[0]
    result = runner.invoke(args=["sync", "rejects", run_id])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "file,line,identity,reason",
        "a.csv,3,CRM-000003,no profile with external_id CRM-000003",
        "a.csv,7,,empty identity",
    ]
    unknown = runner.invoke(args=["sync", "rejects", "999999"])
    assert unknown.exit_code == 1 and unknown.output.strip() == "Error: no sync run with id 999999"
