"""The peer as developers start it: inside ``flask --app wsgi emulators`` (through the emulator
runner, and as the real command) and alone with ``python -m sync.peers.platform``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from flask import Flask

from gateway.cli import peers as runner
from sync.peers.platform import PeerConfig
from tests.conftest import TEST_SECRET, runtime_of
from tests.sync.peers.conftest import EXPERIENCE_EVENT, Aep, event

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def emulators(app: Flask, tmp_path: Path) -> Iterator[runner.RunningEmulators]:
    rt = runtime_of(app)
    credentials = runner.StoredCredentials(rt.sessions, rt.box)
    running = runner.start(credentials, tmp_path / "tls", platform_port=0, platform_config=PeerConfig(tenant_id="acme"))
    yield running
    running.stop()


def test_runner_starts_the_peer_and_exports_its_settings(emulators: runner.RunningEmulators) -> None:
    peer = emulators.platform
    assert peer is not None
    env = emulators.environment()
    assert (
        env["PUSHGATE_AEP_IMS_URL"] == env["PUSHGATE_AEP_PLATFORM_URL"] == env["PUSHGATE_AEP_STREAMING_URL"] == peer.url
    )
    assert env["PUSHGATE_AEP_TENANT_ID"] == "acme" and env["PUSHGATE_AEP_INLET_ID"] == peer.config.inlet_id
    assert env["PUSHGATE_APNS_ENDPOINT"] == emulators.apns.url  # the push settings are still there
    with httpx.Client(base_url=peer.url, timeout=10) as http:
        aep = Aep(peer, http)
        schema = aep.schema("events", [EXPERIENCE_EVENT])
        dataset = aep.dataset("push events", schema["$id"])
        assert aep.stream([aep.envelope(schema["$id"], dataset, event("e1"))]).status_code == 207
    with httpx.Client(base_url=emulators.inbox_url, timeout=10) as http:
        page = http.get("/").text
        assert "Local Experience Platform peer" in page and "push events" in page and dataset in page
        assert http.get("/inbox").json() == []


def test_runner_leaves_the_peer_off_unless_asked(app: Flask, tmp_path: Path) -> None:
    rt = runtime_of(app)
    running = runner.start(runner.StoredCredentials(rt.sessions, rt.box), tmp_path / "tls")
    try:
        assert running.platform is None
        assert not any(key.startswith("PUSHGATE_AEP_") for key in running.environment())
    finally:
        running.stop()


def _read_until(stream: IO[str], marker: str, limit: int = 40) -> list[str]:
    seen = []
    for _ in range(limit):
        line = stream.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} not printed; got {seen}")


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(15)
    finally:
        if process.poll() is None:
            process.kill()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.slow
def test_module_command_prints_its_url_first(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sync.peers.platform", "--port", "0", "--tenant", "acme", "--token-ttl", "60"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        assert first.startswith("Platform peer listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[-1]
        exports = _read_until(process.stdout, "PUSHGATE_AEP_INLET_ID")
        assert f"export PUSHGATE_AEP_PLATFORM_URL={url}" in exports
        assert "export PUSHGATE_AEP_TENANT_ID=acme" in exports
        state = httpx.get(f"{url}/_peer/state", timeout=10).json()
        assert state["tenant"] == "acme"
    finally:
        assert _stop(process) == 0


@pytest.mark.slow
def test_flask_emulators_command_runs_the_peer(database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    instance = tmp_path / "instance"
    env.update(
        {
            "PUSHGATE_DATABASE_URL": database_url,
            "PUSHGATE_SECRET_KEY": TEST_SECRET,
            "PUSHGATE_INSTANCE_PATH": str(instance),
            "PUSHGATE_AEP_TENANT_ID": "acme",
            "PUSHGATE_AEP_CLIENT_SECRET": "p8e-REAL-SECRET-never-printed",
        }
    )
    ports = ["--apns-port", "0", "--fcm-port", "0", "--inbox-port", "0", "--platform-port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "emulators", *ports],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = _read_until(process.stdout, "PUSHGATE_AEP_INLET_ID", limit=60)
        (peer_line,) = [line for line in printed if line.startswith("AEP peer")]
        url = peer_line.split()[2]
        saved = dict(line.split("=", 1) for line in (instance / "emulators.env").read_text().splitlines())
        assert saved["PUSHGATE_AEP_STREAMING_URL"] == url and saved["PUSHGATE_AEP_TENANT_ID"] == "acme"
        # A configured client secret is never echoed: the peer uses its own.
        assert "REAL-SECRET" not in "\n".join(printed) and "REAL-SECRET" not in str(saved)
        assert saved["PUSHGATE_AEP_CLIENT_SECRET"] == PeerConfig().client_secret
        assert "PUSHGATE_APNS_ENDPOINT" in saved
        assert httpx.get(f"{url}/_peer/state", timeout=10).json()["tenant"] == "acme"
    finally:
        _stop(process)
    assert not (instance / "emulators.env").exists()
