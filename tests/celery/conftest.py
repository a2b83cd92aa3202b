"""Fixtures of the Celery mode tests: a PostgreSQL database of their own, a RabbitMQ virtual host
(or a Redis database) of their own, the local APNs and FCM emulators, and real
``celery -A pushgate_celery worker`` and ``beat`` processes started against them (stopped, or
killed, by the end of the test). Each test skips, saying why, when the service it needs does not
answer; under CI (``CI`` set, as ``.ci/run`` starts them all) it fails instead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest
import redis
from kombu.connection import Connection

from store import db as store_db
from tests.conftest import TEST_SECRET
from tests.functional.conftest import emulators, pointed  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "pushgate_celery_tests"
VHOST = "pushgate_celery_tests"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_BROKER = "redis://127.0.0.1:6379/6"


def missing(reason: str) -> NoReturn:
    """Skip the test for want of a service, or fail it under CI, where every service must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (.ci/run starts it)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostgreSQL database of these tests (never the suite's own), made anew and dropped after."""
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        missing(f"Celery mode needs PostgreSQL at 127.0.0.1:5432: {exc}")
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
    store_db.upgrade(url)
    yield url
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """RabbitMQ on loopback, in a virtual host of these tests when rabbitmqctl may make one."""
    vhost = "/"
    made = subprocess.run(["rabbitmqctl", "add_vhost", VHOST], capture_output=True, check=False)
    if made.returncode == 0 or b"already exists" in made.stderr + made.stdout:
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"], check=True)
        vhost = VHOST
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        missing(f"Celery mode tests need RabbitMQ at 127.0.0.1:5672: {exc}")
    return url


@pytest.fixture(scope="session")
def redis_broker_url() -> str:
    try:
        redis.Redis.from_url(REDIS_BROKER).ping()
    except redis.RedisError as exc:
        missing(f"Celery mode tests need Redis at {REDIS_BROKER}: {exc}")
    return REDIS_BROKER


def empty_queues(broker_url: str) -> None:
    """Nothing left in the queues by an earlier test (or run)."""
    if broker_url.startswith("redis"):
        redis.Redis.from_url(broker_url).flushdb()
        return
    with Connection(broker_url) as connection:
        channel = connection.default_channel
        for queue in ("push", "sync"):
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            channel.queue_purge(queue)


def ready_messages(broker_url: str, queue: str = "push") -> int:
    """Messages waiting in ``queue`` (not those a worker holds)."""
    if broker_url.startswith("redis"):
        return int(redis.Redis.from_url(broker_url).llen(queue))
    with Connection(broker_url) as connection:
        return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)


@dataclass
class CeleryWorker:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tasks_done(self, task: str) -> int:
        return sum(1 for line in self.log().splitlines() if f"Task {task}[" in line and " succeeded in " in line)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def celery_workers(tmp_path: Path) -> Iterator[Callable[..., CeleryWorker]]:
    """Starts ``celery -A pushgate_celery worker`` processes with the settings given (the
    ``PUSHGATE_*`` environment of a worker host), or through ``flask --app wsgi worker`` with
    ``shortcut``; all are stopped by the end of the test."""
    started: list[CeleryWorker] = []

    def start(
        settings: dict[str, Any], name: str, *options: str, shortcut: bool = False, queues: str = "push,sync"
    ) -> CeleryWorker:
        env = celery_environment(settings, tmp_path / name)
        log_path = tmp_path / f"{name}.log"
        argv = [sys.executable, "-m", "celery", "-A", "pushgate_celery", "worker", "-Q", queues]
        if shortcut:  # flask --app wsgi worker, which becomes the same Celery worker
            argv = [sys.executable, "-m", "flask", "--app", "wsgi", "worker"]
        argv += ["-n", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle", *options]
        with log_path.open("wb") as out:
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        worker = CeleryWorker(name, process, log_path)
        started.append(worker)
        return worker

    yield start
    stop_all(started)


def celery_environment(settings: dict[str, Any], instance_path: Path) -> dict[str, str]:
    """The environment of a worker or beat host: ``settings`` as ``PUSHGATE_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    env.update({f"PUSHGATE_{k.upper()}": str(v) for k, v in settings.items()})
    env.update({"PUSHGATE_SECRET_KEY": TEST_SECRET, "PUSHGATE_INSTANCE_PATH": str(instance_path)})
    return env


def stop_all(started: list[CeleryWorker]) -> None:
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in started:
        try:
            worker.process.wait(15)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait(5)


@pytest.fixture
def celery_beats(tmp_path: Path) -> Iterator[Callable[[dict[str, Any], str], CeleryWorker]]:
    """Starts ``celery -A pushgate_celery beat`` processes (each with a schedule file of its own, as
    on separate hosts); all are stopped by the end of the test."""
    started: list[CeleryWorker] = []

    def start(settings: dict[str, Any], name: str) -> CeleryWorker:
        log_path = tmp_path / f"{name}.log"
        schedule = tmp_path / f"{name}-schedule"
        argv = [sys.executable, "-m", "celery", "-A", "pushgate_celery", "beat", "-s", str(schedule), "-l", "INFO"]
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=celery_environment(settings, tmp_path / name), stdout=out, stderr=subprocess.STDOUT
            )
        beat = CeleryWorker(name, process, log_path)
        started.append(beat)
        return beat

    yield start
    stop_all(started)
