"""Entry points: building the app starts nothing; the in-process worker runs in each process that
serves (every gunicorn worker, also under ``--preload``; ``flask run``) and never in a gunicorn
master or a CLI command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from gateway.cli import peers as runner
from tests.conftest import TEST_SECRET
from tests.factories import make_app
from tests.functional.test_push_end_to_end import add_subscriptions, free_port, serve_first_request
from tests.values import apns_token, fcm_token
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"in-process worker started in process (\d+)")
STOPPED = re.compile(r"in-process worker stopped in process (\d+)")
BOOTED = re.compile(r"Booting worker with pid: (\d+)")


def gateway_env(settings: dict[str, Any], instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHGATE_", "GUNICORN_", "FLASK_"))}
    env.update({f"PUSHGATE_{k.upper()}": str(v) for k, v in settings.items()})
    env.update(PUSHGATE_SECRET_KEY=TEST_SECRET, PUSHGATE_INSTANCE_PATH=str(instance), PUSHGATE_LOG_LEVEL="INFO")
    env.update(extra)
    return env


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "server.log"
    yield path
    if path.exists():
        print(path.read_text()[-5000:])  # shown when the test fails


def run_python(settings_overrides: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run this Python with ``args`` in the repository, against the test database; output captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=gateway_env(settings_overrides, tmp_path / "gw"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_importing_wsgi_starts_no_thread(settings_overrides: dict[str, Any], tmp_path: Path) -> None:
    # Threads that end by themselves are let go first (the rate limiter's in-memory store runs a
    # 10 ms expiry timer when it is made): what is left after a second was started to stay.
    script = (
        "import threading, wsgi\n"
        "for t in threading.enumerate():\n"
        "    if t is not threading.main_thread(): t.join(1)\n"
        "print(sorted(t.name for t in threading.enumerate()))"
    )
    done = run_python(settings_overrides, tmp_path, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MainThread']", done.stdout
    assert not STARTED.search(done.stderr) and "in-process worker started" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", [["keys", "list"], ["db", "current"]])
def test_cli_commands_start_no_worker(settings_overrides: dict[str, Any], tmp_path: Path, command: list[str]) -> None:
    done = run_python(settings_overrides, tmp_path, "-m", "flask", "--app", "wsgi", *command)
    assert done.returncode == 0, done.stderr
    assert "in-process worker started" not in done.stderr, done.stderr


@pytest.mark.slow
def test_flask_run_starts_its_worker_with_the_first_request(
    settings_overrides: dict[str, Any], tmp_path: Path, log_file: Path
) -> None:
    port = free_port()
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(port)],
            cwd=ROOT,
            env=gateway_env(settings_overrides, tmp_path / "gw"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        serve_first_request(process, port)
        wait_until(
            lambda: STARTED.search(log_file.read_text()) is not None,
            30,
            interval=0.1,
            message=lambda: f"the worker did not start; log:\n{log_file.read_text()}",
        )
        assert [int(pid) for pid in STARTED.findall(log_file.read_text())] == [process.pid]
    finally:
        stop(process)


@pytest.mark.slow
def test_gunicorn_preload_runs_one_worker_in_each_worker_process_and_sends(
    app: Flask,
    keys: Any,
    emulators: runner.RunningEmulators,
    pointed: dict[str, Any],
    tmp_path: Path,
    log_file: Path,
) -> None:
    """The production command with --preload: the app is built in the master, the in-process
    worker runs in each of the 2 forked workers (not in the master), sends a delivery created
    through the API, and stops when gunicorn stops."""
    ids = make_app(app, token_uri=emulators.fcm.token_url)
    tokens = [("ios", apns_token(f"preload-{n}")) for n in range(3)] + [
        ("android", fcm_token(f"preload-{n}")) for n in range(3)
    ]
    add_subscriptions(app, ids["id"], tokens)
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"]
    argv += ["--preload", "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "20"]
    with log_file.open("wb") as log:
        master = subprocess.Popen(
            argv, cwd=ROOT, env=gateway_env(pointed, tmp_path / "gw"), stdout=log, stderr=subprocess.STDOUT
        )
    try:

        def both_workers_started() -> bool:
            if master.poll() is not None:
                raise AssertionError(f"gunicorn exited with {master.returncode}")
            text = log_file.read_text()
            booted = set(BOOTED.findall(text))
            return len(booted) == 2 and booted <= set(STARTED.findall(text))

        wait_until(
            both_workers_started,
            60,
            interval=0.1,
            message=lambda: f"no in-process worker in each gunicorn worker; log:\n{log_file.read_text()}",
        )
        text = log_file.read_text()
        workers = {int(pid) for pid in BOOTED.findall(text)}
        started = [int(pid) for pid in STARTED.findall(text)]
        assert sorted(started) == sorted(workers), "one in-process worker per gunicorn worker, none in the master"
        assert master.pid not in started

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            body = {
                "app_id": ids["id"],
                "name": "preload",
                "target": {"all": True},
                "message": {"title": "t", "body": "b"},
            }
            created = http.post("/api/v1/deliveries", json=body, headers=keys.marketer)
            assert created.status_code == 201, created.text
            delivery_id = created.json()["id"]

            def completed() -> bool:
                answer = http.get(f"/api/v1/deliveries/{delivery_id}", headers=keys.viewer)
                return bool(answer.json()["status"] == "completed")

            wait_until(completed, 60, interval=0.1, message="the delivery did not complete")
            counts = http.get(f"/api/v1/deliveries/{delivery_id}", headers=keys.viewer).json()["counts"]
        assert counts["sent"] == len(tokens), counts
        assert sorted(r["token"] for r in emulators.inbox.items()) == sorted(t for _, t in tokens)
    finally:
        stop(master)
    assert master.returncode == 0
    wait_until(  # the log is written by the exiting workers
        lambda: {int(pid) for pid in STOPPED.findall(log_file.read_text())} == workers,
        10,
        interval=0.1,
        message=lambda: f"not every worker {sorted(workers)} logged its stop; log:\n{log_file.read_text()}",
    )
