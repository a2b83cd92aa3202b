"""The measurements of ``bench/segments.py``: each runs in a child process of its own and prints one
JSON line, and a round runs them one after the other and checks what they did.

``child_import`` runs the segments sync job against Azurite and a copy of the scale's database and
reports its time, counts, the job's own phase timings and its peak RSS. ``child_bare`` only
downloads and parses the blob; ``child_floor`` adds the least database work the import needs
(raw sqlite3; on PostgreSQL bare ``COPY`` and one ``INSERT ... SELECT``:
``bench/segments_postgresql.py``). ``run_round`` runs the bare loop, the import and the floor loop for one scale and
returns their :class:`Pair`; any count that is not what the export holds raises ``RuntimeError``."""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.segments_fixture import CONTAINER, IDENTITY, Scale, blob_name, run_child

_PHASES = re.compile(
    r"read in (?P<read>[\d.]+)s, matched to profiles in (?P<match>[\d.]+)s, applied in (?P<apply>[\d.]+)s"
)


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
    if args.database_url.startswith("postgresql"):
        from bench.segments_postgresql import child_floor_postgresql

        return child_floor_postgresql(args)
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


def run_round(scale: Scale, round_no: int, connection_string: str, timeout: float, databases: Any = None) -> Pair:
    """The bare loop, the import and the floor loop of one round, each on its own copy of the
    scale's database (a file; on PostgreSQL, with ``databases``, a database made from the template)."""
    bare = run_child("bare", ["--connection-string", connection_string, "--blob", blob_name(scale.rows)], timeout)
    if databases is not None:
        import_name, floor_name = databases.copies()
        import_url = databases.create(import_name, template=databases.name)
    else:
        database = scale.folder / f"round{round_no}.db"
        shutil.copyfile(scale.template, database)
        import_url = f"sqlite:///{database}"
    options = [
        "--connection-string",
        connection_string,
        "--prefix",
        f"scale{scale.rows}/",
        "--database-url",
        import_url,
        "--instance",
        str(scale.folder),
        "--secret-key",
        scale.secret_key,
    ]
    imported = run_child("import", options, timeout)
    if databases is not None:
        databases.drop(import_name)
        floor_url = databases.create(floor_name, template=databases.name)
    else:
        floor_db = scale.folder / f"round{round_no}-floor.db"
        shutil.copyfile(scale.template, floor_db)
        floor_url = f"sqlite:///{floor_db}"
    floor_options = ["--connection-string", connection_string, "--blob", blob_name(scale.rows)]
    floor = run_child("floor", [*floor_options, "--database-url", floor_url], timeout)
    if databases is not None:
        databases.drop(floor_name)
    else:
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
