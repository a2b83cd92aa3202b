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
database in a temporary folder, so no PostgreSQL is needed.
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


SMOKES = (
    # the worker end to end against the emulators, the raw-client baseline (send_baseline.py), one
    # delivery to both platforms; several batches in flight
    Smoke("send", ("bench/send.py", "--subscriptions", "20", "--quick", "--batch-size", "4"), 120),
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
    Smoke(
        "personalisation", ("bench/personalisation.py", "--messages", "20", "--batch-size", "8", "--rounds", "1"), 60
    ),
)


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
    for smoke in chosen:
        print(f"{smoke.name:<22}", end="", flush=True)
        passed, output, took = run(smoke)
        verified = next((line for line in output.splitlines() if line.startswith(VERIFIED)), "")
        print(f"{'ok' if passed else 'FAILED':<7}{took:6.1f} s  {verified if passed else ''}", flush=True)
        if not passed:
            failed.append(smoke.name)
            tail = "\n".join(output.splitlines()[-40:])
            print(f"  $ python {' '.join(smoke.argv)}\n" + "\n".join(f"  | {line}" for line in tail.splitlines()))
    print(f"benchmarks run in {time.monotonic() - started:.0f} s")
    print(f"smoke: {len(chosen) - len(failed)} passed, {len(failed)} failed")  # the closing line CI reads
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
