"""What ``bench/registration.py`` serves and sends: the two gunicorn servers, the database they
share and the exact request bodies of the Android Classic SDK.

``make_servers`` builds the gateway's and the baseline's :class:`Server` (same gunicorn settings,
not yet started; each on a free port of 127.0.0.1). ``prepare_database`` migrates the
:class:`Fixture`'s database and fills it with one app, its profiles and the baseline's table;
``count_rows`` reads back what the run wrote and ``cleanup_shared_database`` removes it from a
shared database. ``make_bodies`` builds unique registration bodies, a given share of whose
``userKey`` match a profile. The project is imported only inside the functions that need it, so
that the load process, which imports this module, stays free of it."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import ROOT, Child

REGISTER_PATH = "/nms/mobile/1/registerAndroid.jssp"
FORM = "application/x-www-form-urlencoded;charset=UTF-8"
USER_AGENT = "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 6 Build/UQ1A.240205.004)"
GATEWAY_APP = "wsgi:app"
BASELINE_APP = "bench.baseline_app:app_from_env()"
TARGETS = ("gateway", "baseline")


# --------------------------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces


def process_tree_cpu(root_pid: int) -> float:
    """User + system CPU seconds of ``root_pid`` and its direct children (gunicorn master + workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        fields = _stat_fields(pid)
        if fields is None:
            continue
        if pid == root_pid or int(fields[1]) == root_pid:  # fields[1] is ppid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


@dataclass
class Server:
    """A gunicorn server: a :class:`Child` and the port it listens on."""

    child: Child
    port: int

    @property
    def name(self) -> str:
        return self.child.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.child.start()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                self.child.check_alive()
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /healthz within {timeout:.0f}s:\n{self.child.log_tail()}")

    def cpu_seconds(self) -> float:
        return process_tree_cpu(self.child.pid)

    def stop(self) -> None:
        self.child.stop()


def gunicorn_argv(app_spec: str, port: int, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        app_spec,
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--keep-alive",
        "30",
        "--timeout",
        "120",
        "--graceful-timeout",
        "5",
        "--log-level",
        "warning",
    ]


def make_servers(args: argparse.Namespace, fx: Fixture, workdir: Path) -> list[Server]:
    """The two gunicorn servers, same settings; only the app (and the gateway's metrics dir) differ."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PUSHGATE_DATABASE_URL=fx.database_url,
        PUSHGATE_INSTANCE_PATH=str(fx.instance_path),
        PUSHGATE_SECRET_KEY=fx.secret_key,
        PUSHGATE_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    )
    # One load client stands for many phones: the limit is set out of reach, and its check still
    # runs on every request, so its cost is in the figures.
    gateway_env = dict(env, PUSHGATE_RATE_LIMIT_PUBLIC="1000000000/minute")
    if args.prometheus_multiproc:
        metrics_dir = workdir / "prometheus"
        metrics_dir.mkdir()
        gateway_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    servers = []
    for name, spec, server_env in (("gateway", args.gateway_app, gateway_env), ("baseline", BASELINE_APP, env)):
        port = free_port()
        child = Child(name, gunicorn_argv(spec, port, args), server_env, workdir / f"{name}.log")
        servers.append(Server(child, port))
    return servers


# --------------------------------------------------------------------------------------------
# database
# --------------------------------------------------------------------------------------------


@dataclass
class Fixture:
    database_url: str
    instance_path: Path
    secret_key: str
    run_id: str
    app_id: int = 0
    android_key: str = ""
    known_users: list[str] = field(default_factory=list)
    #: This run's app recorded its secret key in an empty ``secret_check`` (store.secret_check): a
    #: shared database keeps no key of a run, or the next run's new key would be refused.
    made_secret_check: bool = False


def _has_secret_check(database_url: str) -> bool:
    from sqlalchemy import func, select

    from store.db import make_engine
    from store.models import SecretCheck

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return bool(conn.scalar(select(func.count()).select_from(SecretCheck)))
    finally:
        engine.dispose()


def prepare_database(fx: Fixture, profiles: int) -> None:
    """Migrate, insert one app (both platforms) and ``profiles`` profiles, create the baseline table."""
    from bench.baseline_app import metadata
    from gateway.app import create_app
    from gateway.runtime import runtime
    from store import db as store_db
    from store.models import Profile
    from tests.factories import make_app

    store_db.upgrade(fx.database_url)
    had_secret_check = _has_secret_check(fx.database_url)
    application = create_app(
        overrides={
            "database_url": fx.database_url,
            "instance_path": fx.instance_path,
            "secret_key": fx.secret_key,
            "log_level": "WARNING",
        }
    )
    fx.made_secret_check = not had_secret_check
    ids = make_app(application, name="Bench", suffix=f"-bench-{fx.run_id}")
    fx.app_id, fx.android_key = ids["id"], ids["android_key"]
    with application.app_context():
        rt = runtime()
    fx.known_users = [f"bench-{fx.run_id}-user{i}@example.com" for i in range(profiles)]
    with rt.sessions.begin() as session:
        session.add_all(Profile(external_id=key, email=key) for key in fx.known_users)
    metadata.create_all(rt.engine)
    rt.engine.dispose()


def count_rows(fx: Fixture) -> tuple[int, int, int]:
    """(subscriptions of the bench app, of them linked to a profile, baseline rows)."""
    from sqlalchemy import func, select

    from bench.baseline_app import bench_registration
    from store.db import make_engine
    from store.models import Subscription

    engine = make_engine(fx.database_url)
    try:
        with engine.connect() as conn:
            subs = conn.scalar(select(func.count()).where(Subscription.app_id == fx.app_id)) or 0
            linked = (
                conn.scalar(
                    select(func.count()).where(Subscription.app_id == fx.app_id, Subscription.profile_id.is_not(None))
                )
                or 0
            )
            baseline = conn.scalar(select(func.count()).select_from(bench_registration)) or 0
        return subs, linked, baseline
    finally:
        engine.dispose()


def cleanup_shared_database(fx: Fixture) -> None:
    """On a shared database (PostgreSQL), remove exactly what this run added."""
    from sqlalchemy import delete

    from bench.baseline_app import bench_registration
    from store.db import make_engine
    from store.models import App, Profile, SecretCheck, Subscription

    engine = make_engine(fx.database_url)
    try:
        with engine.begin() as conn:
            if fx.app_id:
                conn.execute(delete(Subscription).where(Subscription.app_id == fx.app_id))
                conn.execute(delete(App).where(App.id == fx.app_id))  # its platforms cascade
            conn.execute(delete(Profile).where(Profile.external_id.like(f"bench-{fx.run_id}-%")))
            bench_registration.drop(conn, checkfirst=True)
            if fx.made_secret_check:
                conn.execute(delete(SecretCheck))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# request bodies
# --------------------------------------------------------------------------------------------


def make_bodies(fx: Fixture, tag: str, count: int, known_share: float) -> list[bytes]:
    """Exact Android Classic bodies with unique ~160-character FCM tokens."""
    from tests.gateway.sdk.test_classic import android_body

    filler = uuid.uuid4().hex * 4  # 128 characters of FCM's alphabet
    every = round(1 / known_share) if known_share > 0 else 0
    bodies = []
    for i in range(count):
        token = f"b{fx.run_id}{tag}{i:07d}:APA91b{filler}"
        if every and i % every == 0 and fx.known_users:
            user_key = fx.known_users[(i // every) % len(fx.known_users)]
        else:
            user_key = f"anon-{fx.run_id}-{tag}-{i}@example.com"
        bodies.append(android_body(fx.android_key, token=token, user_key=user_key))
    return bodies
