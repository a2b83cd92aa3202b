"""Benchmark: Campaign Classic Android registration under gunicorn, against a bare parse-and-insert.

Two targets are served by gunicorn with identical settings on 127.0.0.1:

- ``gateway``: the real gateway (``gunicorn wsgi:app``), ``POST /nms/mobile/1/registerAndroid.jssp``;
- ``baseline``: ``bench/baseline_app.py``, a bare Flask route that parses the same form and inserts
  one row (one INSERT + COMMIT) into a table of its own in the same database, with the same engine
  settings (``store.db.make_engine``).

A separate load process (multiprocessing, spawn) sends the exact bodies the Android Classic SDK
builds (``tests/sdk/test_classic.py::android_body``: device fields, ``additionalParams`` XML and a
``userKey``, part of which match an existing profile), each with a unique FCM token so that every
request inserts, over keep-alive connections (one ``httpx.Client`` per connection). Each round warms
a target up, then measures it; rounds alternate the targets and the best round of each is kept.

The load process shares the machine's cores with the servers, so its CPU time per request is
printed too ("load CPU"), beside the servers' ("srv CPU", gunicorn master + workers, read from
/proc): on a busy or small machine, srv CPU per request is the steadier figure of the two.

It prints requests/s, p50/p99 latency, errors and the server's CPU time per request for both, and
the ratio gateway_rps / baseline_rps (issue 2's goal: at least 0.7). Any non-200 answer makes the
run exit with status 1. Time is never asserted anywhere: this prints figures.

    python bench/registration.py                  # SQLite (WAL) in a fresh temporary instance folder
    python bench/registration.py --requests 20000 --concurrency 32
    python bench/registration.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shlex
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's packages, when run as ``python bench/registration.py``

from bench.common import Child, end_children_on_signals, exit_with, remove_workdir  # noqa: E402

REGISTER_PATH = "/nms/mobile/1/registerAndroid.jssp"
FORM = "application/x-www-form-urlencoded;charset=UTF-8"
USER_AGENT = "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 6 Build/UQ1A.240205.004)"
GATEWAY_APP = "wsgi:app"
BASELINE_APP = "bench.baseline_app:app_from_env()"
TARGETS = ("gateway", "baseline")


# --------------------------------------------------------------------------------------------
# load process (runs in its own process; imports nothing of the project)
# --------------------------------------------------------------------------------------------


def run_load(base_url: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    """Send every body once from ``concurrency`` threads, each with its own keep-alive connection.

    One ``httpx.Client`` per thread is httpx's cheapest way to do this: a shared ``AsyncClient``
    costs about three times the client CPU per request at this concurrency (its pool is searched
    on every request), and the load process shares the machine's cores with the servers.
    """
    headers = {"Content-Type": FORM, "User-Agent": USER_AGENT}
    latencies = [0.0] * len(bodies)
    errors: Counter[str] = Counter()
    samples: list[str] = []
    pending = iter(range(len(bodies)))
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def worker() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as client:
            start.wait()
            while True:
                with lock:
                    i = next(pending, None)
                if i is None:
                    return
                started = time.perf_counter()
                try:
                    response = client.post(REGISTER_PATH, content=bodies[i])
                    outcome, detail = str(response.status_code), response.text.strip()[:200]
                except Exception as exc:  # a refused, reset or timed-out request counts as an error
                    outcome, detail = type(exc).__name__, str(exc)[:200]
                latencies[i] = time.perf_counter() - started
                if outcome != "200":
                    with lock:
                        errors[outcome] += 1
                        if len(samples) < 5:
                            samples.append(f"{outcome}: {detail}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    cpu_started = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "elapsed": elapsed,
        "latencies": latencies,
        "errors": dict(errors),
        "samples": samples,
        "client_cpu": time.process_time() - cpu_started,
    }


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


def prepare_database(fx: Fixture, profiles: int) -> None:
    """Migrate, insert one app (both platforms) and ``profiles`` profiles, create the baseline table."""
    from bench.baseline_app import metadata
    from gateway.app import create_app
    from gateway.runtime import runtime
    from store import db as store_db
    from store.models import Profile
    from tests.factories import make_app

    store_db.upgrade(fx.database_url)
    application = create_app(
        overrides={
            "database_url": fx.database_url,
            "instance_path": fx.instance_path,
            "secret_key": fx.secret_key,
            "log_level": "WARNING",
        }
    )
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
    from store.models import App, Profile, Subscription

    engine = make_engine(fx.database_url)
    try:
        with engine.begin() as conn:
            if fx.app_id:
                conn.execute(delete(Subscription).where(Subscription.app_id == fx.app_id))
                conn.execute(delete(App).where(App.id == fx.app_id))  # its platforms cascade
            conn.execute(delete(Profile).where(Profile.external_id.like(f"bench-{fx.run_id}-%")))
            bench_registration.drop(conn, checkfirst=True)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# bodies and figures
# --------------------------------------------------------------------------------------------


def make_bodies(fx: Fixture, tag: str, count: int, known_share: float) -> list[bytes]:
    """Exact Android Classic bodies with unique ~160-character FCM tokens."""
    from tests.sdk.test_classic import android_body

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


@dataclass
class Result:
    target: str
    round: int
    requests: int
    elapsed: float
    latencies: list[float]
    errors: dict[str, int]
    samples: list[str]
    server_cpu: float
    client_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def line(self) -> str:
        return (
            f"{self.target:<9}{self.rps:>9.1f}{self.percentile(50):>9.2f}{self.percentile(99):>9.2f}"
            f"{self.error_count:>8}{self.server_cpu / self.requests * 1000:>12.3f}"
            f"{self.client_cpu / self.requests * 1000:>12.3f}"
        )


HEADER = f"{'target':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'srv CPU ms':>12}{'load CPU ms':>12}"


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/registration.py",
        description="Load the Campaign Classic Android registration endpoint of the gateway and a bare "
        "Flask parse-and-insert route, both under gunicorn with identical settings, and print "
        "requests/s, p50/p99 latency, errors and the ratio gateway_rps / baseline_rps.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per target and round")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured requests before each measured run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating the targets; best kept")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (gthread), same for both targets")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker, same for both")
    parser.add_argument(
        "--known-user-share",
        type=float,
        default=0.5,
        help="share of requests whose userKey matches an existing profile (0-1)",
    )
    parser.add_argument("--profiles", type=int, default=1000, help="profiles created before the run")
    parser.add_argument(
        "--database-url",
        default="",
        help="run against this database instead of a fresh SQLite file (e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/test). The run adds one app, its profiles and "
        "subscriptions, and a bench_registration table, and removes them afterwards; do not run it while the "
        "test suite uses the same database (its teardown empties every table: the gateway then answers 404)",
    )
    parser.add_argument(
        "--prometheus-multiproc",
        action="store_true",
        help="serve the gateway with PROMETHEUS_MULTIPROC_DIR set, as a multi-worker deployment should",
    )
    parser.add_argument(
        "--gateway-app",
        default=GATEWAY_APP,
        help="gunicorn app spec of the gateway target (another spec compares a prototype; PYTHONPATH is passed on)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, server logs)")
    args = parser.parse_args(argv)
    if args.requests < 100 or args.concurrency < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("need --requests >= 100, --concurrency >= 1, --rounds >= 1, --warmup >= 0")
    if not 0 <= args.known_user_share <= 1:
        parser.error("--known-user-share must be between 0 and 1")
    if args.workers < 1 or args.threads < 1:
        parser.error("--workers and --threads must be at least 1")
    return args


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
    gateway_env = dict(env)
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


def print_config(args: argparse.Namespace, fx: Fixture, sqlite: bool) -> None:
    print("pushgate registration benchmark")
    print(f"command:      {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"config:       requests={args.requests} concurrency={args.concurrency} warmup={args.warmup} "
        f"rounds={args.rounds} known_user_share={args.known_user_share} profiles={args.profiles} "
        f"prometheus_multiproc={args.prometheus_multiproc}"
    )
    print(f"database:     {'SQLite (WAL) in a fresh temporary instance folder' if sqlite else fx.database_url}")
    shown = ["gunicorn", "<app>", *gunicorn_argv("", 0, args)[4:]]
    print(f"server:       {shlex.join(shown).replace('127.0.0.1:0', '127.0.0.1:<free port>')} (both targets)")
    print(f"apps:         gateway={args.gateway_app}   baseline={BASELINE_APP}   POST {REGISTER_PATH}")
    print(f"machine:      {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}")
    print(
        f"load:         1 separate process, {args.concurrency} threads with one keep-alive httpx.Client each, "
        "unique FCM token per request"
    )
    print()


def run_rounds(
    args: argparse.Namespace, fx: Fixture, servers: list[Server], pool: Any
) -> tuple[list[Result], Counter[str]]:
    """Alternate the targets for ``args.rounds`` rounds: warm up, then measure; print each run."""
    by_name = {server.name: server for server in servers}
    results: list[Result] = []
    warmup_errors: Counter[str] = Counter()
    print(f"round {HEADER}")
    for round_no in range(1, args.rounds + 1):
        order = TARGETS if round_no % 2 else tuple(reversed(TARGETS))
        for name in order:
            server = by_name[name]
            tag = f"{name[0]}{round_no}"
            if args.warmup:
                warm = make_bodies(fx, f"{tag}w", args.warmup, args.known_user_share)
                figures = pool.apply(run_load, (server.url, warm, args.concurrency))
                warmup_errors.update({f"{name}:{k}": v for k, v in figures["errors"].items()})
                for sample in figures["samples"]:
                    print(f"      {name} warm-up error sample: {sample}")
            bodies = make_bodies(fx, tag, args.requests, args.known_user_share)
            cpu_before = server.cpu_seconds()
            figures = pool.apply(run_load, (server.url, bodies, args.concurrency))
            cpu_after = server.cpu_seconds()
            result = Result(
                target=name,
                round=round_no,
                requests=len(bodies),
                elapsed=figures["elapsed"],
                latencies=figures["latencies"],
                errors=figures["errors"],
                samples=figures["samples"],
                server_cpu=cpu_after - cpu_before,
                client_cpu=figures["client_cpu"],
            )
            results.append(result)
            print(f"{round_no:<6}{result.line()}", flush=True)
            for sample in result.samples:
                print(f"      error sample: {sample}")
    return results, warmup_errors


def report(args: argparse.Namespace, fx: Fixture, results: list[Result], warmup_errors: Counter[str]) -> int:
    """Print the best run of each target and the ratio; 1 when any request failed or rows are missing."""
    best = {name: max((r for r in results if r.target == name), key=lambda r: r.rps) for name in TARGETS}
    ratio = best["gateway"].rps / best["baseline"].rps
    gateway_cpu = best["gateway"].server_cpu / best["gateway"].requests
    baseline_cpu = best["baseline"].server_cpu / best["baseline"].requests
    print()
    print(f"best of {args.rounds} round(s) per target (srv CPU = gunicorn master + workers, load CPU = load process):")
    print(f"      {HEADER}")
    for name in TARGETS:
        print(f"      {best[name].line()}")
    print()
    print(f"ratio gateway_rps / baseline_rps = {ratio:.3f}   (goal >= 0.70: {'met' if ratio >= 0.7 else 'NOT met'})")
    if baseline_cpu > 0:
        print(f"server CPU per request, gateway / baseline = {gateway_cpu / baseline_cpu:.2f}x")

    subs, linked, baseline_rows = count_rows(fx)
    expected = args.rounds * (args.requests + args.warmup)
    print(
        f"rows written: gateway {subs} subscriptions ({linked} linked to a profile), "
        f"baseline {baseline_rows} rows; {expected} requests sent to each"
    )
    total_errors = sum(r.error_count for r in results) + sum(warmup_errors.values())
    if total_errors or subs != expected or baseline_rows != expected:
        print(
            f"\nFAILED: {total_errors} non-200 answer(s) "
            f"(measured: {[(r.target, r.round, r.errors) for r in results if r.errors]}, "
            f"warm-up: {dict(warmup_errors)}); rows {subs}/{baseline_rows} of {expected} expected",
            file=sys.stderr,
        )
        return 1
    print("verified: every answer 200, one subscription and one baseline row per request")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    end_children_on_signals()  # so that `finally` ends every child

    from cryptography.fernet import Fernet

    workdir = Path(tempfile.mkdtemp(prefix="pushgate-bench-"))
    sqlite = not args.database_url
    fx = Fixture(
        database_url=args.database_url or f"sqlite:///{workdir / 'instance' / 'pushgate.db'}",
        instance_path=workdir / "instance",
        secret_key=Fernet.generate_key().decode(),
        run_id=uuid.uuid4().hex[:8],
    )
    servers: list[Server] = []
    pool = None
    try:
        prepare_database(fx, args.profiles)
        servers = make_servers(args, fx, workdir)
        for server in servers:
            server.start()
        for server in servers:
            server.wait_healthy()
        pool = multiprocessing.get_context("spawn").Pool(1)  # the load process, separate from the servers
        print_config(args, fx, sqlite)
        results, warmup_errors = run_rounds(args, fx, servers, pool)
        return report(args, fx, results, warmup_errors)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        for server in servers:
            server.stop()
        if not sqlite:
            cleanup_shared_database(fx)
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    exit_with(main, "servers and load process stopped")
