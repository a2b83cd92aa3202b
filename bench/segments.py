"""Benchmark: the segment import from Azure Blob, against a bare download-and-parse loop.

Everything runs on 127.0.0.1, started by this script and ended on any exit:

- Azurite (``node_modules/.bin/azurite-blob``, as the tests start it: ``sync.peers.azurite``),
  holding one Platform-like CSV export per scale, ``Bench_{segmentId}_{stamp}.csv``: columns
  ``crmId``, ``personalEmail.address``, ``person.name.firstName``, ``person.name.lastName``,
  ``segmentMembership.status`` (90% realized, 10% existing); 0.1% of the rows name an unknown
  ``crmId`` and are rejected. Rows come in a random order relative to profile ids (``--order
  sorted`` for the export in profile order), as an export from Platform would;
- per scale, a fresh SQLite (WAL) database in a temporary instance folder, migrated with
  ``store.db.upgrade``, holding one profile per known ``crmId`` (bulk-inserted); each import
  works on a fresh copy of it, so every round imports into an empty audience. With ``--database
  postgresql`` the same in throwaway databases on the ``--postgresql-url`` server, created and
  dropped by this script (``bench/segments_postgresql.py``);
- the import: a child process (``--child import``) runs ``sync.runs.execute("segments",
  sync.segments.run, ...)`` with the settings pointing at Azurite and the copy, and reports
  its time, its counts, the phases the job logs (read and stage, match to profiles, apply) and
  its peak RSS (``VmHWM`` of ``/proc/self/status``);
- the bare loop: a child process (``--child bare``) downloads the same blob with
  azure-storage-blob (its default options, ``StorageStreamDownloader.chunks()``) and parses it
  with ``csv.reader`` over a text stream, counting rows. It runs just before each import, so the
  ratio compares two runs made seconds apart on a machine others may be loading.

- the floor loop: a child process (``--child floor``) does what the bare loop does plus the least
  database work the import needs, with raw sqlite3 on another fresh copy: each row's identity and
  status into a temporary table, one statement looking them up in ``profile``, then one ``INSERT
  ... SELECT`` of the matched rows into ``audience_member`` in profile id order, committed. It
  shows what SQLite itself costs, so the import can be judged against that as well as against
  parsing alone: no import that keeps its members in SQLite can beat the floor's rate. On
  PostgreSQL the floor streams the rows into a temporary table with one bare ``COPY`` and
  applies them with one ``INSERT ... SELECT`` joining ``profile``.

Goals (issue 4): import rows/s at least 0.5 of the bare loop's at ``--rows``; peak memory of the
import at ``--rows`` at most 1.3 times that at ``--small``. Time is never asserted: this prints
figures.

This module is the command line, the hidden ``--child`` modes the measurements run in and the
order of the runs; the parts it drives: ``bench/segments_fixture.py`` (the export, the profiles and
the child processes), ``bench/segments_phases.py`` (the measurements, each checked) and
``bench/segments_report.py`` (the printed figures).

    python bench/segments.py                  # 100,000 then 1,000,000 rows, 3 rounds each (~2 minutes)
    python bench/segments.py --rows 200000 --small 20000 --rounds 1
    python bench/segments.py --database postgresql --rows 200000 --small 20000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's packages, when run as ``python bench/segments.py``

from bench.common import code_version, end_children_on_signals, exit_with, remove_workdir  # noqa: E402
from bench.segments_fixture import COLUMNS, UNKNOWN_EVERY, prepare_scale  # noqa: E402
from bench.segments_phases import Pair, child_bare, child_floor, child_import, run_round  # noqa: E402
from bench.segments_postgresql import DEFAULT_URL, Databases  # noqa: E402
from bench.segments_report import HEADER, pair_line, report  # noqa: E402

#: What the figures measure: uncommitted changes here are named in the header.
MEASURED_CODE = ("sync/segments", "sync/sources/blob.py", "sync/runs.py", "store/")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/segments.py",
        description="Import a Platform-like segment export from Azurite with the segments sync job (in a child "
        "process), and parse the same blob with a bare azure-storage-blob + csv.reader loop; print rows/s of "
        "both, their ratio (goal >= 0.5) and the import's peak memory at --small and --rows rows (goal: "
        "ratio <= 1.3).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the main export")
    parser.add_argument("--small", type=int, default=100_000, help="rows of the smaller export (memory comparison)")
    parser.add_argument("--rounds", type=int, default=3, help="(bare loop, import) pairs per scale")
    parser.add_argument(
        "--order", choices=("random", "sorted"), default="random", help="row order of the export, against profile ids"
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the store imported into: a SQLite file, or throwaway databases on the --postgresql-url server",
    )
    parser.add_argument(
        "--postgresql-url",
        default=os.environ.get("PUSHGATE_BENCH_POSTGRESQL_URL", DEFAULT_URL),
        help="with --database postgresql: the server and the name of the throwaway database to create (and "
        "NAME_import, NAME_floor), all dropped at the end; env PUSHGATE_BENCH_POSTGRESQL_URL",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one child process may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (databases)")
    parser.add_argument("--child", choices=("import", "bare", "floor"), help=argparse.SUPPRESS)
    for name in ("--connection-string", "--blob", "--prefix", "--database-url", "--instance", "--secret-key"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None and (args.rows < 1000 or args.small < 1000 or args.rounds < 1):
        parser.error("need --rows >= 1000, --small >= 1000, --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "import":
        print(json.dumps(child_import(args)))
        return 0
    if args.child == "bare":
        print(json.dumps(child_bare(args)))
        return 0
    if args.child == "floor":
        print(json.dumps(child_floor(args)))
        return 0
    from sync.peers.azurite import Azurite

    end_children_on_signals()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="pushgate-segments-"))
    databases = Databases(args.postgresql_url) if args.database == "postgresql" else None
    azurite = Azurite.start()
    pairs: list[Pair] = []
    try:
        print("pushgate segment import benchmark")
        print(f"command:    {shlex.join([sys.executable, *sys.argv])}")
        print(
            f"machine:    {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}; "
            f"load average {os.getloadavg()[0]:.2f} at start"
        )
        print(f"code:       {code_version(MEASURED_CODE, untracked=True)}")
        store = (
            f"PostgreSQL {databases.server}, databases {databases.name}, {', '.join(databases.copies())} at "
            f"{databases.url_of(databases.name).split('@')[-1]}"
            if databases
            else f"SQLite (WAL) in {workdir}"
        )
        print(f"peer:       Azurite {azurite.url} (in memory); {store}")
        print(
            f"export:     {len(COLUMNS)} columns ({', '.join(COLUMNS)}), 1 row in {UNKNOWN_EVERY} unknown, "
            f"order {args.order}; rows {args.small} and {args.rows}, {args.rounds} round(s) each"
        )
        print()
        print(HEADER, flush=True)
        for rows in sorted({args.small, args.rows}):
            prepared = time.perf_counter()
            scale = prepare_scale(workdir, rows, args.order, azurite.connection_string, databases)
            print(
                f"-- {rows} rows: export of {scale.blob_bytes / 1e6:.1f} MB uploaded, {rows} profiles inserted in "
                f"{time.perf_counter() - prepared:.1f}s",
                flush=True,
            )
            for round_no in range(1, args.rounds + 1):
                pair = run_round(scale, round_no, azurite.connection_string, args.timeout, databases)
                pairs.append(pair)
                print(pair_line(pair), flush=True)
            scale.template.unlink(missing_ok=True)
        report(args, pairs)
        print(f"verified: every import applied {100 - 100 / UNKNOWN_EVERY:.1f}% of the rows and rejected the unknown")
        print(f"load average {os.getloadavg()[0]:.2f} at the end; total runtime {time.perf_counter() - started:.0f}s")
        return 0
    finally:
        azurite.stop()
        if databases is not None:
            databases.close()
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    exit_with(main, "Azurite stopped")
