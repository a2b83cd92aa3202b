"""Fixtures of the console's browser tests: a gateway served on loopback with its in-process worker
sending to the local emulators, headless Chromium (Debian's ``chromium``, driven by Playwright
through ``executable_path``: Playwright's own browser download cannot work offline), signed-in
pages, a screenshot of every test under ``test-results/<test>/``, and axe-core's accessibility
check (from ``node_modules``, installed by ``make setup``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from domain import users
from gateway.app import create_app
from gateway.worker import start_in_process_worker, stop_in_process_worker
from tests.conftest import runtime_of

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[3]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
OUTPUT = Path(os.environ.get("PUSHGATE_TEST_OUTPUT", ROOT / "test-results"))
PASSWORD = "correct horse battery staple"


def chromium_path() -> str | None:
    return os.environ.get("PUSHGATE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for the console's tests. Package-scoped, not session-scoped: Playwright's sync
    API keeps an asyncio loop running in this thread while it is open, and later tests that call
    asyncio.run() would find it."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium); .ci/run installs it")
        pytest.skip("the browser tests need Debian's chromium package (apt-get install chromium)")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def console_app(pointed: dict[str, Any]) -> Iterator[Flask]:
    """A gateway sending to the emulators, its in-process worker running (as under ``make run``)."""
    application = create_app(overrides={**pointed, "worker_poll_seconds": 0.2})
    start_in_process_worker(application)
    yield application
    stop_in_process_worker(application)
    runtime_of(application).engine.dispose()


@pytest.fixture
def console_url(console_app: Flask) -> Iterator[str]:
    """The console's gateway served over real HTTP on 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, console_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def make_user(console_app: Flask) -> Callable[[str, str], str]:
    """Create a console user of ``role`` with ``email``; returns the e-mail (password: PASSWORD)."""

    def make(email: str, role: str) -> str:
        with runtime_of(console_app).sessions.begin() as session:
            users.create_user(session, email=email, role=role, password=PASSWORD)
        return email

    return make


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    """This test's output folder: ``test-results/<test name>/``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.nodeid.split("::", 1)[-1]).strip("-")
    folder = OUTPUT / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Any, console_url: str, output_dir: Path) -> Iterator[Any]:
    """A new browser page on the console; its last state is saved as screenshot.png."""
    context = browser.new_context(base_url=console_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    try:
        page.screenshot(path=str(output_dir / "screenshot.png"), full_page=True)
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/console/(?!sign-in).*"))


def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run make setup (npm ci installs axe-core)")
    page.evaluate(AXE.read_text())  # through the DevTools protocol: the console's CSP allows no inline script
    result = page.evaluate("async () => JSON.stringify((await axe.run(document)).violations)")
    violations: list[dict[str, Any]] = json.loads(result)
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
