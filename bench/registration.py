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
the ratio gateway_rps / baseline_rps (issue 18's goal: at least 0.85, with p99 at most 1.3x the
baseline's; issue 2's was 0.7). Any non-200 answer makes the
run exit with status 1. Time is never asserted anywhere: this prints figures.

This module is the command line and the order of the runs; the parts it drives:
``bench/registration_fixture.py`` (the servers, the database and the bodies),
``bench/registration_phases.py`` (the load process and the measured rounds) and
``bench/registration_report.py`` (the printed figures and the exit status).

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
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's packages, when run as ``python bench/registration.py``

from bench.common import end_children_on_signals, exit_with, remove_workdir  # noqa: E402
from bench.registration_fixture import (  # noqa: E402
    BASELINE_APP,
    GATEWAY_APP,
    REGISTER_PATH,
    Fixture,
    Server,
    cleanup_shared_database,
    gunicorn_argv,
    make_servers,
    prepare_database,
)
from bench.registration_phases import run_rounds  # noqa: E402
from bench.registration_report import report  # noqa: E402


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
