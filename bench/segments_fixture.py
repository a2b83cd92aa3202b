"""What ``bench/segments.py`` sets up before it measures: the export in Azurite, the profiles in a
fresh database, and the child processes every measurement runs in.

``prepare_scale`` uploads one Platform-like CSV export of ``rows`` rows (``blob_name(rows)``; one
row in ``UNKNOWN_EVERY`` names no profile) and builds a migrated SQLite template holding one
profile per known ``crmId`` (on PostgreSQL a template database: ``bench/segments_postgresql.py``);
each measurement works on its own copy of that template.
``run_child`` runs ``bench/segments.py --child KIND`` with the given options and returns the JSON
line the child prints last; a child that exits non-zero raises ``RuntimeError``."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT

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


def blob_name(rows: int) -> str:
    return f"scale{rows}/Bench_{SEGMENT}_{STAMP}.csv"


def crm_id(i: int) -> str:
    return f"crm-{i:08d}"


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


def run_child(kind: str, options: list[str], timeout: float) -> dict[str, Any]:
    # the entry point, not this module: its hidden ``--child`` option is what runs a measurement
    argv = [sys.executable, str(ROOT / "bench" / "segments.py"), "--child", kind, *options]
    done = subprocess.run(argv, cwd=ROOT, env=base_env(), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child exited with {done.returncode}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


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


def prepare_scale(workdir: Path, rows: int, order: str, connection_string: str, databases: Any = None) -> Scale:
    """Upload the export; fill the scale's database: a SQLite template file, or with ``databases``
    (:class:`bench.segments_postgresql.Databases`) its PostgreSQL template database."""
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
    folder.mkdir(parents=True, exist_ok=True)
    if databases is not None:
        from bench.segments_postgresql import fill_template

        fill_template(databases, rows)
        return scale
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
