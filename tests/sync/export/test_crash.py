"""A log export killed with SIGKILL in the middle, then run again: nothing is lost, and only the one
request that was in flight at the kill can reach the Platform twice, with the same ``_id``s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from sync.peers.platform import PlatformPeer
from sync.peers.platform_api.routes import ENDPOINTS
from tests.conftest import TEST_SECRET
from tests.sync.export.conftest import ids, records, run_job, state
from tests.sync.export.test_export import expected_ids, seed

ROOT = Path(__file__).resolve().parents[3]
ROWS = 6000


class StreamingBatches:
    """What the peer does with each streaming batch, told as it happens: ``arrived`` counts the
    requests it took (before the fault holds each for 0.4 s), ``answered`` those it has stored."""

    def __init__(self, peer: PlatformPeer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.arrived = 0
        self.answered = 0
        self.changed = threading.Condition()
        take_fault = peer._take_fault
        category, handler = ENDPOINTS["stream_batch"]

        def taking(category: str) -> Any:
            if category == "streaming-batch":
                self._count("arrived")
            return take_fault(category)

        def handling(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                self._count("answered")

        monkeypatch.setattr(peer, "_take_fault", taking)
        monkeypatch.setitem(ENDPOINTS, "stream_batch", (category, handling))

    def _count(self, which: str) -> None:
        with self.changed:
            setattr(self, which, getattr(self, which) + 1)
            self.changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float, message: str) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), (
                f"{message} (arrived {self.arrived}, answered {self.answered})"
            )


@pytest.mark.slow
def test_an_export_killed_mid_way_loses_nothing_and_resends_at_most_the_request_in_flight(
    app: Flask,
    peer: PlatformPeer,
    provisioned: Any,
    settings_overrides: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    row_ids = seed(app, ROWS)
    batches = StreamingBatches(peer, monkeypatch)
    peer.add_fault(path="streaming-batch", slow=0.4, times=1000)  # every request takes 0.4 s
    env = {
        **os.environ,
        **peer.environment(),
        "PUSHGATE_DATABASE_URL": settings_overrides["database_url"],
        "PUSHGATE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PUSHGATE_SECRET_KEY": TEST_SECRET,
        "PUSHGATE_WORKER": "off",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "sync", "logs", "--stream", "broadlog"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        dataset = state(app, "dataset:broadlog")
        assert dataset is not None
        # A request was taken, and the next one is in flight: the peer holds it for 0.4 s.
        batches.wait(
            lambda: process.poll() is not None or (batches.answered >= 1 and batches.arrived > batches.answered),
            60,
            "no streaming batch was taken with another one in flight",
        )
        assert process.poll() is None, "the export ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    before = len(peer.records(dataset))
    assert 0 < before < ROWS
    watermark = state(app, "export:broadlog")
    assert watermark is not None  # moved after each request the Platform took, not before
    batches.wait(  # the peer finishes the request that was in flight
        lambda: batches.answered == batches.arrived, 10, "the peer did not finish the request in flight"
    )
    with peer.state.lock:
        peer.state.faults.clear()
    again = run_job(app, "logs", streams=["broadlog"], force=True)
    assert again.status == "succeeded", again.error
    got = ids(records(app, peer, "broadlog"))
    assert set(got) == expected_ids(row_ids)  # nothing lost
    twice = [record_id for record_id, count in Counter(got).items() if count > 1]
    assert all(count <= 2 for count in Counter(got).values())
    in_flight = max(Counter(entry["xactionId"].rsplit(":", 1)[0] for entry in peer.records(dataset)).values())
    assert len(twice) <= in_flight  # at most the one request in flight at the kill
