"""The sync configuration file: loaded and checked once per process, and a broken one fails the jobs
that read it with its one line (the file's own checks are in test_governance.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from core.errors import ConfigError
from sync import service
from sync.config import SyncConfig, sync_config
from tests.conftest import runtime_of

AEP = {
    "aep_client_id": "client",
    "aep_client_secret": "secret",
    "aep_org_id": "ACME@AdobeOrg",
    "aep_tenant_id": "acme",
    "aep_inlet_id": "inlet",
}


def write(path: Path, content: Any, *, mtime: int | None = None) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def settings_for(app: Flask, **update: Any) -> Any:
    return runtime_of(app).settings.model_copy(update=update)


def test_no_file_is_an_empty_configuration(app: Flask) -> None:
    assert sync_config(settings_for(app, sync_config=None)) == SyncConfig()


def test_the_file_is_read_once_and_again_only_when_it_changes(app: Flask, tmp_path: Path) -> None:
    path = write(tmp_path / "sync.json", {"audiences": {"names": {"s1": "Gold"}}}, mtime=1_760_000_000)
    settings = settings_for(app, sync_config=path)
    first = sync_config(settings)
    assert first.audiences.names == {"s1": "Gold"}
    assert sync_config(settings) is first
    assert sync_config(settings_for(app, sync_config=path)) is first  # the same file for other settings objects

    write(path, {"audiences": {"names": {"s1": "Platinum"}}}, mtime=1_760_000_060)
    again = sync_config(settings)
    assert again is not first and again.audiences.names == {"s1": "Platinum"}
    assert sync_config(settings) is again


def test_a_broken_file_raises_its_one_line_each_time_until_it_is_fixed(app: Flask, tmp_path: Path) -> None:
    path = write(tmp_path / "sync.json", {"audiences": {"names": {"s1": "Gold"}}}, mtime=1_760_000_000)
    settings = settings_for(app, sync_config=path)
    sync_config(settings)
    write(path, '{"audiences": ', mtime=1_760_000_060)
    line = f"PUSHGATE_SYNC_CONFIG {path}: not valid JSON: Expecting value at line 1 column 15"
    for _ in range(2):
        with pytest.raises(ConfigError) as info:
            sync_config(settings)
        assert str(info.value) == line
    path.unlink()
    with pytest.raises(ConfigError, match=r": no such file$"):
        sync_config(settings)
    write(path, {}, mtime=1_760_000_120)
    assert sync_config(settings) == SyncConfig()


@pytest.mark.parametrize(
    ("job", "content", "problem"),
    [
        ("segments", '{"governance": []}', "governance: expected an object, got an array"),
        ("logs", '{"governance": []}', "governance: expected an object, got an array"),
        ("provision", '{"governance": []}', "governance: expected an object, got an array"),
        ("logs", {"export": {"streams": []}}, "export.streams: List should have at least 1 item"),
        ("provision", {"export": {"identityNamespace": ""}}, "export.identityNamespace: String should have at least 1"),
    ],
)
def test_a_broken_file_fails_the_jobs_that_read_it_before_they_do_anything(
    app: Flask, tmp_path: Path, job: str, content: Any, problem: str
) -> None:
    path = write(tmp_path / "sync.json", content)
    settings = settings_for(app, sync_config=path, segments_identity_column="crmId", **AEP)
    run = service.run_now(job, settings=settings, sessions=runtime_of(app).sessions, trigger="cli")
    assert run.status == "failed"
    assert run.error is not None and "\n" not in run.error
    assert run.error.startswith(f"PUSHGATE_SYNC_CONFIG {path}: {problem}")
    assert run.summary["details"] == []
