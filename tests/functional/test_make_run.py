"""``make run`` (scripts/run-local.sh) as an operator meets it (issue 16, item 3): the banner names
the ports it was given, the welcome push arrives, a second run on the same instance folder is
refused without touching the first one's emulators.env, a taken gateway port is one line, and
stopping it stops its children and removes its pid file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.functional.test_push_end_to_end import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "run-local.sh"


def environment(instance: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHGATE_", "FLASK_"))}
    env.update(
        BIN=str(Path(sys.executable).parent),
        PUSHGATE_INSTANCE_PATH=str(instance),
        FLASK_RUN_PORT=str(ports["gateway"]),
        PUSHGATE_EMULATOR_APNS_PORT=str(ports["apns"]),
        PUSHGATE_EMULATOR_FCM_PORT=str(ports["fcm"]),
        PUSHGATE_EMULATOR_INBOX_PORT=str(ports["inbox"]),
        PUSHGATE_EMULATOR_PLATFORM_PORT=str(ports["platform"]),
    )
    return env


def start(env: dict[str, str], log: IO[str]) -> subprocess.Popen[Any]:
    return subprocess.Popen(["bash", str(SCRIPT)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("gateway", "apns", "fcm", "inbox", "platform")}


@pytest.fixture
def running(tmp_path: Path, ports: dict[str, int]) -> Iterator[tuple[subprocess.Popen[Any], Path, Path]]:
    log_path = tmp_path / "first.log"
    with log_path.open("w") as log:
        process = start(environment(tmp_path / "instance", ports), log)
        try:
            yield process, tmp_path / "instance", log_path
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
            print(log_path.read_text()[-4000:])  # shown when the test fails


def test_make_run_twice_and_stopping_it(
    running: tuple[subprocess.Popen[Any], Path, Path], ports: dict[str, int], tmp_path: Path
) -> None:
    process, instance, log_path = running
    wait_until(lambda: "console on" in log_path.read_text() or process.poll() is not None, 90)
    banner = log_path.read_text()
    assert f"gateway on http://127.0.0.1:{ports['gateway']} — the welcome push appears at " in banner
    assert f"http://127.0.0.1:{ports['inbox']}/" in banner
    assert "console: sign in at /console/ as marketer@example.com with the password " in banner
    inbox = f"http://127.0.0.1:{ports['inbox']}/inbox"
    wait_until(lambda: len(httpx.get(inbox, timeout=5).json()) == 2, 30, message="the welcome push did not arrive")
    settings = (instance / "emulators.env").read_text()

    second = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=ROOT,
        env=environment(instance, ports),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    assert f"pushgate is already running from {instance} (make run, pid {process.pid})" in second.stderr
    assert (instance / "emulators.env").read_text() == settings  # the first one's settings are intact

    other = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=ROOT,
        env=environment(tmp_path / "other", ports),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert other.returncode == 1
    assert other.stderr.strip() == (
        f"port {ports['gateway']} is in use by another program: stop it, or choose another port with "
        "FLASK_RUN_PORT=5001 make run"
    )

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 130
    assert not (instance / "make-run.pid").exists() and not (instance / "emulators.env").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(inbox, timeout=2)
