"""An admin in a browser: an API key created (shown once), used and revoked; a token released
from quarantine; sync runs, a run's rejects and their CSV, "Run now" for a job without its
settings; no serious accessibility violation on the three list pages."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
from flask import Flask

from domain import quarantine
from domain.subscriptions import Registration, register
from store.types import utcnow
from sync import service
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.functional.console.conftest import serious_violations, sign_in
from tests.sync import test_runs
from tests.values import fcm_token

GONE = fcm_token("console-gone")
jobs = test_runs.jobs


def _quarantined(console_app: Flask) -> None:
    app_id = make_app(console_app)["id"]
    rt = runtime_of(console_app)
    with rt.sessions.begin() as session:
        register(
            session,
            Registration(app_id=app_id, platform="android", token=GONE, sdk="native", push_provider="fcm"),
            reconciliation_field="external_id",
        )
        quarantine.record_hard_error(
            session,
            app_id=app_id,
            platform="android",
            token=GONE,
            reason=1,
            text="NOT_FOUND: Requested entity was not found.",
            unregistered_at=utcnow(),
        )


def test_an_admin_manages_keys_quarantine_and_sync_runs(
    app: Flask,  # first: its clean-up empties the tables once the console's gateway has stopped
    page: Any,
    console_app: Flask,
    console_url: str,
    make_user: Any,
    jobs: None,
    output_dir: Path,
) -> None:
    _quarantined(console_app)
    rt = runtime_of(console_app)
    run = service.run_now("two", settings=rt.settings, sessions=rt.sessions, trigger="cli")
    page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm questions
    sign_in(page, make_user("admin@example.com", "admin"))

    # API keys: created and shown once, working, then revoked
    page.get_by_role("link", name="API keys", exact=True).click()
    page.wait_for_url(re.compile(r".*/console/api-keys/$"))
    assert serious_violations(page) == []
    page.get_by_label("Name").fill("Campaign workflow")
    page.get_by_label("Role").select_option("marketer")
    page.get_by_role("button", name="Create API key").click()
    page.get_by_role("heading", name="API key created").wait_for()
    page.screenshot(path=str(output_dir / "api-key-created.png"), full_page=True)
    assert serious_violations(page) == []
    full = page.locator("#new-api-key").inner_text().strip()
    assert re.fullmatch(r"pgk_[A-Za-z0-9]+_[A-Za-z0-9_-]+", full), full
    page.get_by_role("button", name="Copy the key").click()
    page.get_by_role("button", name=re.compile("Copied|Selected")).wait_for()  # the clipboard is asynchronous
    with httpx.Client(base_url=console_url, timeout=10) as http:
        bearer = {"Authorization": f"Bearer {full}"}
        assert http.get("/api/v1/quarantine", headers=bearer).status_code == 200
        page.get_by_role("link", name="Back to API keys").click()
        row = page.get_by_role("row").filter(has_text="Campaign workflow")
        assert full not in page.content()
        assert f"pgk_{full.split('_')[1]}_" in row.inner_text()
        row.get_by_role("button", name="Revoke").click()
        page.get_by_text("The API key Campaign workflow is revoked").wait_for()
        assert row.get_by_role("button", name="Revoke").count() == 0
        assert http.get("/api/v1/quarantine", headers=bearer).status_code == 401
    page.screenshot(path=str(output_dir / "api-keys.png"), full_page=True)

    # Quarantine: the token released
    page.get_by_role("link", name="Quarantine", exact=True).click()
    page.wait_for_url(re.compile(r".*/console/quarantine/$"))
    assert serious_violations(page) == []
    entry = page.get_by_role("row").filter(has=page.locator(f'code[title="{GONE}"]'))
    assert "Quarantine" in entry.inner_text() and "NOT_FOUND" in entry.inner_text()
    entry.get_by_role("button", name="Release").click()
    page.get_by_text("released: its subscriptions are enabled again").wait_for()
    assert "Valid" in entry.inner_text() and entry.get_by_role("button", name="Release").count() == 0
    page.screenshot(path=str(output_dir / "quarantine.png"), full_page=True)

    # Sync runs: the list, a run with rejects and their CSV, and a job lacking its settings
    page.get_by_role("link", name="Sync runs", exact=True).click()
    page.wait_for_url(re.compile(r".*/console/sync-runs/$"))
    assert serious_violations(page) == []
    page.get_by_role("link", name=f"Run {run.id}", exact=True).click()
    page.get_by_role("heading", name=f"Sync run {run.id}: two").wait_for()
    assert serious_violations(page) == []
    rejects = page.get_by_role("table", name="Rejected rows of this run")
    assert "CRM-000003" in rejects.inner_text() and "empty identity" in rejects.inner_text()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the rejects (CSV)").click()
    saved = output_dir / download.value.suggested_filename
    download.value.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text())))
    assert rows[0] == ["file", "line", "identity", "reason"] and len(rows) == 3
    page.screenshot(path=str(output_dir / "sync-run.png"), full_page=True)
    page.get_by_role("link", name="Sync runs", exact=True).first.click()
    page.screenshot(path=str(output_dir / "sync-runs.png"), full_page=True)
    page.get_by_label("Job to run").select_option("profiles")
    page.get_by_role("button", name="Run now").click()
    page.get_by_role("alert").filter(has_text="sFTP is not configured").wait_for()
