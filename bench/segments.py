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
  works on a fresh copy of it, so every round imports into an empty audience;
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
  parsing alone: no import that keeps its members in SQLite can beat the floor's rate.

Goals (issue 4): import rows/s at least 0.5 of the bare loop's at ``--rows``; peak memory of the
import at ``--rows`` at most 1.3 times that at ``--small``. Time is never asserted: this prints
figures.

    python bench/segments.py                  # 100,000 then 1,000,000 rows, 3 rounds each (~2 minutes)
    python bench/segments.py --rows 200000 --small 20000 --rounds 1
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's packages, when run as ``python bench/segments.py``

from bench.common import code_version, end_children_on_signals, exit_with, remove_workdir  # noqa: E402

#: What the figures measure: uncommitted changes here are named in the header.
MEASURED_CODE = ("sync/segments", "sync/sources/blob.py", "sync/runs.py", "store/")

SEGMENT = "9b8f7e6d-5c4b-4a39-8271-605f4e3d2c1b"
STAMP = "20261201_060000"
CONTAINER = "exports"
IDENTITY = "crmId"
COLUMNS = (
    "crmId",
    "personalEmail.address",
    "person.name.firstName",
    "person.name.lastName",
    "segmentMembership.status",
)
FIRST_NAMES = ("Alice", "Bruno", "Chloe", "Dmitri", "Emma", "Farid", "Grace", "Hugo")
LAST_NAMES = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand")
UNKNOWN_EVERY = 1000  # one row in this many names no profile
_PHASES = re.compile(
    r"read in (?P<read>[\d.]+)s, matched to profiles in (?P<match>[\d.]+)s, applied in (?P<apply>[\d.]+)s"
)


def blob_name(rows: int) -> str:
    return f"scale{rows}/Bench_{SEGMENT}_{STAMP}.csv"


def crm_id(i: int) -> str:
    return f"crm-{i:08d}"


# --------------------------------------------------------------------------------------------
# child processes: the import and the bare loop, each measured in its own process
# --------------------------------------------------------------------------------------------


def vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def child_import(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    from core.config import Settings
    from store import db as store_db
    from sync import runs, segments

    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    job_log = logging.getLogger("pushgate.sync.segments")
    job_log.setLevel(logging.INFO)
    job_log.addHandler(Keep())
    settings = Settings(
        database_url=args.database_url,
        instance_path=Path(args.instance),
        secret_key=args.secret_key,
        public_url="https://push.example.test",
        segments_connection_string=args.connection_string,
        segments_container=CONTAINER,
        segments_prefix=args.prefix,
        segments_identity_column=IDENTITY,
        log_level="WARNING",
    )
    engine = store_db.make_engine(settings.database_url)
    sessions = store_db.make_session_factory(engine)
    idle = vm_hwm_kib()
    cpu = cpu_seconds()
    started = time.perf_counter()
    run = runs.execute("segments", segments.run, settings=settings, sessions=sessions, trigger="cli")
    elapsed = time.perf_counter() - started
    engine.dispose()
    phases = next((m.groupdict() for m in map(_PHASES.search, messages) if m), {})
    return {
        "status": run.status,
        "error": run.error,
        "rows": run.summary.get("rows", 0),
        "applied": run.summary.get("applied", 0),
        "rejected": run.summary.get("rejected", 0),
        "elapsed": elapsed,
        "cpu": cpu_seconds() - cpu,
        "phases": {name: float(value) for name, value in phases.items()},
        "idle_kib": idle,
        "peak_kib": vm_hwm_kib(),
    }


def child_bare(args: argparse.Namespace) -> dict[str, Any]:
    from azure.storage.blob import ContainerClient

    client = ContainerClient.from_connection_string(args.connection_string, CONTAINER)
    cpu = cpu_seconds()
    started = time.perf_counter()
    chunks = client.download_blob(args.blob).chunks()
    text = io.TextIOWrapper(io.BufferedReader(_Chunks(chunks)), encoding="utf-8", newline="")
    rows = sum(1 for _ in csv.reader(text)) - 1  # the header
    elapsed = time.perf_counter() - started
    return {"rows": rows, "elapsed": elapsed, "cpu": cpu_seconds() - cpu, "peak_kib": vm_hwm_kib()}


def child_floor(args: argparse.Namespace) -> dict[str, Any]:
    """The least database work this import needs, with nothing else: the bare loop's download and
    parse; each row's identity and status into a temporary table (raw sqlite3 ``executemany``, one
    transaction); one statement looking every identity up in ``profile`` (its unique index, one
    probe a row, in the export's order: sorting 1,000,000 identities first costs more than the
    probes save); one ``INSERT ... SELECT`` of the matched rows into ``audience_member`` in
    profile id order, committed. No ledger, rejects, governance, full/incremental logic or
    SQLAlchemy: what SQLite itself costs on this machine, each step in the cheapest form measured
    here (per-row look-ups inside ``executemany``, or a join planned by SQLite, were slower)."""
    import sqlite3

    from azure.storage.blob import ContainerClient

    client = ContainerClient.from_connection_string(args.connection_string, CONTAINER)
    db = sqlite3.connect(args.database_url.removeprefix("sqlite:///"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # as store.db sets it
    db.execute("PRAGMA foreign_keys=OFF")  # as the import's apply transaction
    cpu = cpu_seconds()
    started = time.perf_counter()
    chunks = client.download_blob(args.blob).chunks()
    text = io.TextIOWrapper(io.BufferedReader(_Chunks(chunks)), encoding="utf-8", newline="")
    reader = csv.reader(text)
    header = next(reader)
    identity, status = header.index("crmId"), header.index("segmentMembership.status")
    db.execute("CREATE TEMPORARY TABLE stage (identity TEXT NOT NULL, status TEXT NOT NULL)")
    db.execute("CREATE TEMPORARY TABLE matched (pid INTEGER NOT NULL, status TEXT NOT NULL)")
    rows = 0
    db.execute("BEGIN")
    while batch := [(row[identity], row[status]) for row in itertools.islice(reader, 5000)]:
        db.executemany("INSERT INTO stage VALUES (?, ?)", batch)
        rows += len(batch)
    db.execute(
        "INSERT INTO matched SELECT coalesce((SELECT p.id FROM profile p WHERE p.external_id = s.identity), 0), "
        "s.status FROM stage s"
    )
    db.execute("COMMIT")
    db.execute("BEGIN IMMEDIATE")
    now = "2026-01-01 00:00:00.000000"
    audience = db.execute(
        "INSERT INTO audience (name, segment_id, created_at, updated_at) VALUES ('floor', 'floor', ?, ?)", (now, now)
    ).lastrowid
    applied = db.execute(
        "INSERT INTO audience_member (audience_id, profile_id, status, entered_at, updated_at) "
        "SELECT ?, pid, status, ?, ? FROM matched WHERE pid > 0 ORDER BY pid",
        (audience, now, now),
    ).rowcount
    db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return {"rows": rows, "applied": applied, "elapsed": elapsed, "cpu": cpu_seconds() - cpu}


class _Chunks(io.RawIOBase):
    """A raw stream over ``StorageStreamDownloader.chunks()``."""

    def __init__(self, chunks: Any) -> None:
        super().__init__()
        self._chunks = chunks
        self._chunk = memoryview(b"")
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._offset >= len(self._chunk):
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._chunk, self._offset = memoryview(chunk), 0
        size = min(len(buffer), len(self._chunk) - self._offset)
        buffer[:size] = self._chunk[self._offset : self._offset + size]
        self._offset += size
        return size


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


def run_child(kind: str, options: list[str], timeout: float) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *options]
    done = subprocess.run(argv, cwd=ROOT, env=base_env(), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child exited with {done.returncode}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------------
# preparing a scale: the export in Azurite, the profiles in a fresh database
# --------------------------------------------------------------------------------------------


@dataclass
class Scale:
    rows: int
    folder: Path
    template: Path  # the migrated database with the profiles, copied before each import
    secret_key: str
    unknown: int = 0
    blob_bytes: int = 0


def export_csv(rows: int, order: str) -> tuple[bytes, int]:
    """The export's bytes and how many of its rows name no profile."""
    indexes = list(range(rows))
    if order == "random":
        random.Random(rows).shuffle(indexes)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    unknown = 0
    for position, i in enumerate(indexes):
        identity = crm_id(i)
        if position % UNKNOWN_EVERY == UNKNOWN_EVERY - 1:
            identity, unknown = f"crm-unknown-{position}", unknown + 1
        status = "existing" if i % 10 == 0 else "realized"
        writer.writerow((identity, f"user{i}@example.com", FIRST_NAMES[i % 8], LAST_NAMES[i % 7], status))
    return out.getvalue().encode(), unknown


def prepare_scale(workdir: Path, rows: int, order: str, connection_string: str) -> Scale:
    from azure.storage.blob import ContainerClient
    from cryptography.fernet import Fernet
    from sqlalchemy import insert

    from store import db as store_db
    from store.models import Profile
    from store.types import utcnow

    folder = workdir / f"instance-{rows}"
    template = folder / "template.db"
    scale = Scale(rows, folder, template, Fernet.generate_key().decode())
    data, scale.unknown = export_csv(rows, order)
    scale.blob_bytes = len(data)
    with ContainerClient.from_connection_string(connection_string, CONTAINER) as client:
        if not client.exists():
            client.create_container()
        client.upload_blob(blob_name(rows), data, overwrite=True, max_concurrency=2)
    del data
    url = f"sqlite:///{template}"
    store_db.upgrade(url)
    engine = store_db.make_engine(url)
    sessions = store_db.make_session_factory(engine)
    now = utcnow()
    chunk = 10_000
    try:
        with sessions.begin() as session:
            for start in range(0, rows, chunk):
                session.execute(
                    insert(Profile),
                    [
                        {
                            "external_id": crm_id(i),
                            "email": f"user{i}@example.com",
                            "first_name": FIRST_NAMES[i % 8],
                            "attributes": {},
                            "push_consent": "u",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in range(start, min(rows, start + chunk))
                    ],
                )
        with engine.connect() as conn:  # one file to copy: fold the WAL into the database
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return scale


# --------------------------------------------------------------------------------------------
# rounds and report
# --------------------------------------------------------------------------------------------


@dataclass
class Pair:
    scale: int
    round: int
    bare: dict[str, Any]
    imported: dict[str, Any]
    floor: dict[str, Any]

    @property
    def bare_rate(self) -> float:
        return float(self.bare["rows"]) / float(self.bare["elapsed"])

    @property
    def import_rate(self) -> float:
        return float(self.imported["rows"]) / float(self.imported["elapsed"])

    @property
    def ratio(self) -> float:
        return self.import_rate / self.bare_rate

    @property
    def floor_rate(self) -> float:
        return float(self.floor["rows"]) / float(self.floor["elapsed"])


def run_round(scale: Scale, round_no: int, connection_string: str, timeout: float) -> Pair:
    bare = run_child("bare", ["--connection-string", connection_string, "--blob", blob_name(scale.rows)], timeout)
    database = scale.folder / f"round{round_no}.db"
    shutil.copyfile(scale.template, database)
    options = [
        "--connection-string",
        connection_string,
        "--prefix",
        f"scale{scale.rows}/",
        "--database-url",
        f"sqlite:///{database}",
        "--instance",
        str(scale.folder),
        "--secret-key",
        scale.secret_key,
    ]
    imported = run_child("import", options, timeout)
    floor_db = scale.folder / f"round{round_no}-floor.db"
    shutil.copyfile(scale.template, floor_db)
    floor_options = ["--connection-string", connection_string, "--blob", blob_name(scale.rows)]
    floor = run_child("floor", [*floor_options, "--database-url", f"sqlite:///{floor_db}"], timeout)
    for path in (database, floor_db):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    if floor["applied"] != scale.rows - scale.unknown:
        raise RuntimeError(f"the floor loop applied {floor['applied']} rows of {scale.rows - scale.unknown}")
    expected = scale.rows - scale.unknown
    if imported["status"] != "succeeded" or imported["applied"] != expected or imported["rejected"] != scale.unknown:
        raise RuntimeError(f"import of {scale.rows} rows did not do its job: {json.dumps(imported)}")
    if bare["rows"] != scale.rows:
        raise RuntimeError(f"the bare loop counted {bare['rows']} rows of {scale.rows}")
    return Pair(scale.rows, round_no, bare, imported, floor)


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
    print(
        "floor: the bare loop plus the least database work the import needs (rows staged with raw sqlite3, looked\n"
        "up in profile by one statement, inserted into audience_member in profile id order, committed): what\n"
        "SQLite itself costs here, and so the best rate any import into SQLite can reach"
    )
    for rows in sorted({p.scale for p in pairs}):
        at_scale = [p for p in pairs if p.scale == rows]
        versus = statistics.median(p.import_rate / p.floor_rate for p in at_scale)
        floor_best = max(p.floor_rate for p in at_scale)
        bare_share = statistics.median(p.floor_rate / p.bare_rate for p in at_scale)
        print(
            f"  {rows:>9} rows: floor {floor_best:>8.0f} rows/s (best) = {bare_share:.2f} of the bare loop; "
            f"import / floor {versus:.2f} (median)"
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


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


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
        print(f"peer:       Azurite {azurite.url} (in memory); SQLite (WAL) in {workdir}")
        print(
            f"export:     {len(COLUMNS)} columns ({', '.join(COLUMNS)}), 1 row in {UNKNOWN_EVERY} unknown, "
            f"order {args.order}; rows {args.small} and {args.rows}, {args.rounds} round(s) each"
        )
        print()
        print(HEADER, flush=True)
        for rows in sorted({args.small, args.rows}):
            prepared = time.perf_counter()
            scale = prepare_scale(workdir, rows, args.order, azurite.connection_string)
            print(
                f"-- {rows} rows: export of {scale.blob_bytes / 1e6:.1f} MB uploaded, {rows} profiles inserted in "
                f"{time.perf_counter() - prepared:.1f}s",
                flush=True,
            )
            for round_no in range(1, args.rounds + 1):
                pair = run_round(scale, round_no, azurite.connection_string, args.timeout)
                pairs.append(pair)
                print(pair_line(pair), flush=True)
            scale.template.unlink(missing_ok=True)
        report(args, pairs)
        print(f"verified: every import applied {100 - 100 / UNKNOWN_EVERY:.1f}% of the rows and rejected the unknown")
        print(f"load average {os.getloadavg()[0]:.2f} at the end; total runtime {time.perf_counter() - started:.0f}s")
        return 0
    finally:
        azurite.stop()
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    exit_with(main, "Azurite stopped")
