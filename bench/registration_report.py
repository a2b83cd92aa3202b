"""The figures of ``bench/registration.py``: one line per measured run, then the best of each target.

A :class:`Result` is one measured run of one target and formats itself as a line under
``HEADER``. ``report`` prints the best run of each target, the ratio gateway_rps / baseline_rps
and the p99s' (issue 18's goals: at least 0.85, and at most 1.3x) and the rows the run wrote, and
returns the exit status: 1 when any answer was not 200 or a row is missing (detailed on stderr),
else 0 after the ``verified:`` line."""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from dataclasses import dataclass

from bench.registration_fixture import TARGETS, Fixture, count_rows


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


#: Issue 18's goals: throughput at least this share of the baseline's, p99 at most this multiple of its.
RATIO_GOAL = 0.85
P99_GOAL = 1.3

HEADER = f"{'target':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'srv CPU ms':>12}{'load CPU ms':>12}"


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
    print(
        f"ratio gateway_rps / baseline_rps = {ratio:.3f}   "
        f"(goal >= {RATIO_GOAL:.2f}: {'met' if ratio >= RATIO_GOAL else 'NOT met'})"
    )
    p99 = best["gateway"].percentile(99) / best["baseline"].percentile(99)
    print(f"p99 gateway / baseline = {p99:.2f}x   (goal <= {P99_GOAL:.1f}x: {'met' if p99 <= P99_GOAL else 'NOT met'})")
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
