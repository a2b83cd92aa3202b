"""Celery mode's settings: SQLite with a broker is refused with one line, by the settings and by
the worker's entry points; the in-process worker never starts in Celery mode; one event loop per
worker process takes every task's coroutines (its hand-off cost printed)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from core.config import load_settings
from core.errors import ConfigError
from gateway.worker import start_in_process_worker
from push.loop import LoopThread
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
REFUSAL = (
    "invalid setting PUSHGATE_BROKER_URL: Celery mode needs PostgreSQL: "
    "set PUSHGATE_DATABASE_URL to a postgresql+psycopg:// URL"
)


def test_a_broker_with_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    for database in ("", f"sqlite:///{tmp_path / 'p.db'}"):
        with pytest.raises(ConfigError) as refused:
            load_settings({"broker_url": "amqp://guest:guest@127.0.0.1:5672//", "database_url": database})
        assert str(refused.value) == REFUSAL
    with pytest.raises(ConfigError, match=r"PUSHGATE_BROKER_URL: must be an amqp:// "):
        load_settings({"broker_url": "http://127.0.0.1:5672", "database_url": "postgresql+psycopg://h/d"})
    with pytest.raises(ConfigError, match=r"^invalid setting PUSHGATE_CELERY_VISIBILITY_TIMEOUT: "):
        load_settings(
            {"broker_url": "redis://h/1", "database_url": "postgresql+psycopg://h/d", "celery_visibility_timeout": 20}
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [["-m", "celery", "-A", "pushgate_celery", "worker"], ["-m", "flask", "--app", "wsgi", "worker"]],
    ids=["celery", "flask"],
)
def test_the_worker_entry_points_stop_with_that_line(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    env.update(
        {
            "PUSHGATE_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
            "PUSHGATE_INSTANCE_PATH": str(tmp_path),
            "PUSHGATE_SECRET_KEY": TEST_SECRET,
        }
    )
    command = [sys.executable, *argv]
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"pushgate: {REFUSAL}" in done.stderr.splitlines()


def test_celery_mode_starts_no_in_process_worker(gateway_with: Any, rabbitmq_url: str) -> None:
    gateway: Flask = gateway_with(broker_url=rabbitmq_url)
    assert start_in_process_worker(gateway) is None
    assert "pushgate_worker" not in gateway.extensions


def test_one_loop_runs_every_task_and_says_what_a_hand_off_costs() -> None:
    loop = LoopThread().start()
    seen: set[asyncio.AbstractEventLoop] = set()

    async def batch(n: int) -> int:
        seen.add(asyncio.get_running_loop())
        return n * 2

    async def failing() -> None:
        raise ValueError("provider down")

    try:
        assert [loop.run(batch(n)) for n in range(3)] == [0, 2, 4]
        with pytest.raises(ValueError, match="provider down"):
            loop.run(failing())
        rounds = 2000
        started = time.perf_counter()
        for n in range(rounds):
            loop.run(batch(n))
        per_task_us = (time.perf_counter() - started) / rounds * 1e6
    finally:
        loop.stop()
    assert len(seen) == 1  # the same loop, so the same provider connections, for every task
    print(json.dumps({"loop_hand_off_us_per_task": round(per_task_us, 1)}))
