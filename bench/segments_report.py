"""The figures of ``bench/segments.py``: one line per round as it ends, then the summary.

``pair_line`` formats one :class:`Pair` under ``HEADER``. ``report`` prints, per scale, the import's
rate against the bare loop's (the median of the paired ratios; goal >= 0.5 at ``--rows``), the
floor loop's rate against both, and the import's peak memory per scale (goal: ratio <= 1.3 between
``--rows`` and ``--small``). Nothing here measures."""

from __future__ import annotations

import argparse
import statistics

from bench.segments_phases import Pair

HEADER = (
    f"{'rows':>9} {'round':>5} {'bare/s':>10} {'import/s':>10} {'ratio':>6} {'floor/s':>9} {'import s':>9} {'read':>6} "
    f"{'match':>6} {'apply':>6} {'cpu s':>6} {'peak RSS':>10}"
)


def pair_line(pair: Pair) -> str:
    phases = pair.imported["phases"]
    return (
        f"{pair.scale:>9} {pair.round:>5} {pair.bare_rate:>10.0f} {pair.import_rate:>10.0f} {pair.ratio:>6.2f} "
        f"{pair.floor_rate:>9.0f} "
        f"{pair.imported['elapsed']:>9.2f} {phases.get('read', 0):>6.2f} {phases.get('match', 0):>6.2f} "
        f"{phases.get('apply', 0):>6.2f} {pair.imported['cpu']:>6.2f} {mib(pair.imported['peak_kib']):>10}"
    )


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def report(args: argparse.Namespace, pairs: list[Pair]) -> None:
    print()
    print("=" * 100)
    print(
        f"SUMMARY over {args.rounds} round(s) per scale. Each import is paired with the bare loop run just before "
        "it;\nratio = import rows/s / bare rows/s, the median of the pairs. Phases (read = download, parse and "
        "stage;\nmatch = identities to profile ids; apply = the one write transaction) are the job's own timings."
    )
    for rows in sorted({p.scale for p in pairs}):
        at_scale = [p for p in pairs if p.scale == rows]
        ratio = statistics.median(p.ratio for p in at_scale)
        best = max(at_scale, key=lambda p: p.import_rate)
        bare = max(p.bare_rate for p in at_scale)
        goal = f"goal >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'}" if rows == args.rows else ""
        print(
            f"  {rows:>9} rows: import {best.import_rate:>8.0f} rows/s (best), bare loop {bare:>8.0f} rows/s (best), "
            f"ratio {ratio:.2f} (pairs: {' '.join(f'{p.ratio:.2f}' for p in at_scale)})  {goal}"
        )
    print()
    if args.database == "postgresql":
        print(
            "floor: the bare loop plus the least database work the import needs on PostgreSQL (rows streamed into a\n"
            "temporary table by one bare COPY, then one INSERT ... SELECT joining profile into audience_member in\n"
            "profile id order, committed): the best rate any import into PostgreSQL can reach"
        )
    else:
        print(
            "floor: the bare loop plus the least database work the import needs (rows staged with raw sqlite3, "
            "looked\nup in profile by one statement, inserted into audience_member in profile id order, committed): "
            "what\nSQLite itself costs here, and so the best rate any import into SQLite can reach"
        )
    for rows in sorted({p.scale for p in pairs}):
        at_scale = [p for p in pairs if p.scale == rows]
        versus = statistics.median(p.import_rate / p.floor_rate for p in at_scale)
        floor_best = max(p.floor_rate for p in at_scale)
        bare_share = statistics.median(p.floor_rate / p.bare_rate for p in at_scale)
        apply = min(p.floor.get("apply", 0.0) for p in at_scale)
        print(
            f"  {rows:>9} rows: floor {floor_best:>8.0f} rows/s (best) = {bare_share:.2f} of the bare loop; "
            f"import / floor {versus:.2f} (median)" + (f"; its INSERT ... SELECT {apply:.2f}s" if apply else "")
        )
    print()
    print("import process memory: VmHWM (peak RSS) of the import child process, first round of each scale")
    peaks = {}
    for rows in sorted({p.scale for p in pairs}):
        first = min((p for p in pairs if p.scale == rows), key=lambda p: p.round)
        peaks[rows] = first.imported["peak_kib"]
        before, bare_peak = mib(first.imported["idle_kib"]), mib(first.bare["peak_kib"])
        print(f"  {rows:>9} rows: peak {mib(peaks[rows])}   (before the run {before}; bare loop peak {bare_peak})")
    if args.small in peaks and args.rows in peaks and args.small != args.rows:
        ratio = peaks[args.rows] / peaks[args.small]
        verdict = "met" if ratio <= 1.3 else "NOT met"
        print(f"  peak ratio {args.rows}/{args.small} = {ratio:.2f}   (goal <= 1.30: {verdict})")
