"""Sync out against the local Experience Platform peer: a peer on loopback per test, settings pointing
the gateway at it, back-offs recorded instead of slept, and helpers to run the jobs and read what
the peer holds."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from core.config import Settings
from store.models import SyncRun, SyncState
from sync import provision, service
from sync.export import job as export_job
from sync.peers.platform import PlatformPeer
from sync.platform.client import Platform
from tests.conftest import runtime_of


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any], peer: PlatformPeer) -> dict[str, Any]:
    aep = {key.removeprefix("PUSHGATE_").lower(): value for key, value in peer.environment().items()}
    # SQLite exports rows as soon as they are committed; on PostgreSQL, drop the clock margin too.
    margin = {"sync_export_settle_seconds": 0} if str(settings_overrides["database_url"]).startswith("postgres") else {}
    return {**settings_overrides, **aep, **margin}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Back-offs the jobs asked for, recorded instead of slept."""
    asked: list[float] = []

    def platform(settings: Settings) -> Platform:
        return Platform(settings, sleep=asked.append)

    monkeypatch.setattr(export_job, "make_platform", platform)
    monkeypatch.setattr(provision, "make_platform", platform)
    return asked


def run_job(app: Flask, job: str, **options: Any) -> SyncRun:
    rt = runtime_of(app)
    return service.run_now(job, settings=rt.settings, sessions=rt.sessions, trigger="cli", options=options)


def state(app: Flask, stream: str) -> str | None:
    with runtime_of(app).sessions() as session:
        row = session.get(SyncState, stream)
        return None if row is None else row.watermark


def records(app: Flask, peer: PlatformPeer, stream: str) -> list[dict[str, Any]]:
    """The records the peer accepted into the stream's dataset, in arrival order."""
    dataset = state(app, f"dataset:{stream}")
    assert dataset, f"{stream} is not provisioned"
    return [entry["record"] for entry in peer.records(dataset)]


def ids(found: list[dict[str, Any]]) -> list[str]:
    return [record["_id"] for record in found]


@pytest.fixture
def provisioned(app: Flask, peer: PlatformPeer, sleeps: list[float]) -> SyncRun:
    run = run_job(app, "provision")
    assert run.status == "succeeded", run.error
    return run


@pytest.fixture
def small_threshold(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    """Batch ingestion for more than 100 rows (ask for it before ``app``)."""
    settings_overrides["sync_export_batch_threshold"] = 100
    return settings_overrides
