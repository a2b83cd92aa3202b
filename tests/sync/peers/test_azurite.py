"""``python -m sync.peers.azurite`` stops its node child when it is stopped, by Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads children from /proc (Linux)")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_peer_stops_azurite(stop: signal.Signals) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "sync.peers.azurite"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ},
    ) as peer:
        try:
            assert peer.stdout is not None
            first = peer.stdout.readline()
            assert first.startswith("Azurite Blob listening on http://127.0.0.1:"), first
            (node,) = _children(peer.pid)
            peer.send_signal(stop)
            assert peer.wait(30) == 0
            wait_until(lambda: not _alive(node), 10, message="Azurite's node process outlived the peer")
        finally:
            if peer.poll() is None:
                peer.kill()
