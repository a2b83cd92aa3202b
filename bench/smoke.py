"""Smoke run of every benchmark: each at its tiniest sizes, as a subprocess, with a time bound.

This checks that the benchmarks still run against the code as it is and that each still verifies
its own results (deliveries sent once each, records held by the peer, rows imported...): a
benchmark passes when it exits 0 within its bound and printed its ``verified:`` line. The figures
it prints are not judged (they mean nothing at these sizes). CI runs this after the tests
(``.ci/run``; locally ``make bench-smoke``).

    python bench/smoke.py                 # every benchmark, one after the other
    python bench/smoke.py send segments   # only these

Services: each benchmark starts what it needs on 127.0.0.1 and ends it (the APNs and FCM
emulators, the Platform peer, Azurite from ``node_modules``); all of them use a fresh SQLite
database in a temporary folder, but ``segments_postgresql``, which creates and drops its own
databases on the server of ``PUSHGATE_BENCH_POSTGRESQL_URL`` (default: postgres@127.0.0.1:5432) and
is skipped when no server answers there, and ``scale`` (Celery workers), which also needs RabbitMQ
at 127.0.0.1:5672 and is skipped, saying which, when either does not answer.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERIFIED = "verified:"


@dataclass(frozen=True)
class Smoke:
    name: str
    argv: tuple[str, ...]
    timeout: float  # seconds; each takes well under a third of it on a 2-core machine
    postgresql: bool = False  # needs the PostgreSQL server of bench/segments.py's --postgresql-url
    rabbitmq: bool = False  # needs RabbitMQ at 127.0.0.1:5672 (bench/scale.py's default broker)


SMOKES = (
    # the worker end to end against the emulators, the raw-client baseline (send_baseline.py), one
    # delivery to both platforms; several batches in flight
    Smoke(
        "send",
        ("bench/send.py", "--subscriptions", "20", "--quick", "--batch-size", "4", "--ceiling-requests", "200"),
        120,
    ),
    # the same worker in-process, its step timers
    Smoke("send_profile", ("bench/send_profile.py", "--subscriptions", "20", "--batch-size", "4"), 90),
    # gunicorn: the gateway and the bare baseline app (baseline_app.py), every answer 200
    Smoke(
        "registration",
        (
            "bench/registration.py",
            *("--requests", "100", "--warmup", "0", "--rounds", "1", "--profiles", "10"),
            *("--concurrency", "2", "--workers", "1", "--threads", "2"),
        ),
        90,
    ),
    Smoke(
        "profile_registration",
        ("bench/profile_registration.py", "--requests", "20", "--warmup", "0", "--profiles", "10"),
        60,
    ),
    # the Platform peer in its own process, the bare loop and the logs export
    Smoke("export", ("bench/export.py", "--rows", "200", "--profiles", "20", "--rounds", "1"), 90),
    # Azurite, the segment import, the bare and floor loops (1000 rows is its least)
    Smoke("segments", ("bench/segments.py", "--rows", "1000", "--small", "1000", "--rounds", "1"), 90),
    # the same on PostgreSQL: COPY staging, its throwaway databases created and dropped
    Smoke(
        "segments_postgresql",
        ("bench/segments.py", "--database", "postgresql", "--rows", "1000", "--small", "1000", "--rounds", "1"),
        90,
        postgresql=True,
    ),
    # Celery mode: 1 and 2 real Celery worker processes and the embedded worker on PostgreSQL,
    # each token exactly once; its database pushgate_bench_scale and RabbitMQ vhost made and removed
    Smoke("scale", ("bench/scale.py", "--subscriptions", "300"), 120, postgresql=True, rabbitmq=True),
    Smoke(
        "personalisation", ("bench/personalisation.py", "--messages", "20", "--batch-size", "8", "--rounds", "1"), 60
    ),
)


def postgresql_missing() -> str | None:
    """Why the PostgreSQL smokes cannot run here (no server answers), or None."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the project's packages, when run as ``python bench/smoke.py``
    import psycopg

    from bench.segments_postgresql import DEFAULT_URL, libpq

    url = os.environ.get("PUSHGATE_BENCH_POSTGRESQL_URL", DEFAULT_URL)
    try:
        psycopg.connect(libpq(url, "postgres"), connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL: {str(exc).strip().splitlines()[0]}"
    return None


def rabbitmq_missing() -> str | None:
    """Why the RabbitMQ smokes cannot run here (no broker answers), or None."""
    from kombu.connection import Connection

    from bench.scale_fixture import DEFAULT_RABBITMQ

    try:
        with Connection(DEFAULT_RABBITMQ, connect_timeout=3) as connection:  # type: ignore[no-untyped-call]
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        return f"no RabbitMQ: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    return None


def run(smoke: Smoke) -> tuple[bool, str, float]:
    """Run one benchmark; returns (passed, its output, seconds)."""
    started = time.monotonic()
    process = subprocess.Popen(  # argv from SMOKES, no shell
        [sys.executable, *smoke.argv],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: a timeout ends its children too
    )
    try:
        output, _ = process.communicate(timeout=smoke.timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the benchmarks stop their children on SIGTERM
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        took = time.monotonic() - started
        return False, f"{output}\ntimed out after {smoke.timeout:g} s", took
    took = time.monotonic() - started
    if process.returncode != 0:
        return False, f"{output}\nexited with {process.returncode}", took
    if not any(line.startswith(VERIFIED) for line in output.splitlines()):
        return False, f"{output}\nexited 0 without printing its {VERIFIED!r} line", took
    return True, output, took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/smoke.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run, of {', '.join(s.name for s in SMOKES)}")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {s.name for s in SMOKES}
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
    chosen = [s for s in SMOKES if not args.names or s.name in args.names]
    started = time.monotonic()
    failed = []
    skipped = 0
    no_postgresql = postgresql_missing() if any(s.postgresql for s in chosen) else None
    no_rabbitmq = rabbitmq_missing() if any(s.rabbitmq for s in chosen) else None
    for smoke in chosen:
        print(f"{smoke.name:<22}", end="", flush=True)
        missing = (smoke.postgresql and no_postgresql) or (smoke.rabbitmq and no_rabbitmq)
        if missing:
            print(f"skipped ({missing})", flush=True)
            skipped += 1
            continue
        passed, output, took = run(smoke)
        verified = next((line for line in output.splitlines() if line.startswith(VERIFIED)), "")
        print(f"{'ok' if passed else 'FAILED':<7}{took:6.1f} s  {verified if passed else ''}", flush=True)
        if not passed:
            failed.append(smoke.name)
            tail = "\n".join(output.splitlines()[-40:])
            print(f"  $ python {' '.join(smoke.argv)}\n" + "\n".join(f"  | {line}" for line in tail.splitlines()))
    print(f"benchmarks run in {time.monotonic() - started:.0f} s")
    closing = f"smoke: {len(chosen) - len(failed) - skipped} passed, {len(failed)} failed"
    print(closing + (f", {skipped} skipped" if skipped else ""))  # the closing line CI reads
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
