"""Building Platform-like segment exports, running the import, and reading what it did."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from azure.storage.blob import ContainerClient
from flask import Flask
from sqlalchemy import select

from store.models import Audience, AudienceMember, Base, Profile, SyncFile, SyncReject, SyncRun
from sync import runs, segments
from sync.sources.blob import BlobSource
from tests.conftest import runtime_of

DESTINATION = "Azure_Blob_Campaign"
SEG_VIP = "7c1e4b2a-1111-4a6e-9d0b-3f5e8a9c0d1e"
SEG_CART = "a2b3c4d5-2222-4e6f-8a9b-0c1d2e3f4a5b"
SEG_LAPSED = "f0e1d2c3-3333-4b5a-9687-7a6b5c4d3e2f"
STAMP = "20261201_060000"
LATER = "20261202_060000"
ID = "crmId"


def export_name(segment: str, stamp: str = STAMP, part: int = 1, ext: str = ".csv", folder: str = "") -> str:
    suffix = "" if part == 1 else f"_{part}"
    return f"{folder}{DESTINATION}_{segment}_{stamp}{suffix}{ext}"


def csv_bytes(columns: Sequence[str], rows: Iterable[Sequence[Any]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().encode()


def single(rows: Iterable[tuple[str, str]], extra: Sequence[str] = ("person.name.firstName",)) -> bytes:
    """A one-segment CSV export: (identity, status) rows."""
    columns = [ID, *extra, "segmentMembership.status"]
    return csv_bytes(columns, ([identity, *(f"v{i}" for i in range(len(extra))), status] for identity, status in rows))


def jsonl_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def upload(container: ContainerClient, name: str, data: bytes) -> str:
    """Upload (or replace) a blob; returns its ETag."""
    result = container.get_blob_client(name).upload_blob(data, overwrite=True)
    return str(result["etag"]).strip('"')  # listings give ETags without quotes


def run_import(
    app: Flask,
    source: BlobSource | None = None,
    options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    **changes: Any,
) -> SyncRun:
    """One ``segments`` run with the app's settings (``changes`` applied), as the CLI would run it."""
    rt = runtime_of(app)
    settings = rt.settings.model_copy(update=changes) if changes else rt.settings
    job: runs.Job = segments.run if source is None else (lambda context: segments.run(context, source=source))
    return runs.execute(
        "segments", job, settings=settings, sessions=rt.sessions, trigger="cli", options=options, progress=progress
    )


def make_profiles(app: Flask, *external_ids: str, **fields: Any) -> dict[str, int]:
    with runtime_of(app).sessions.begin() as session:
        made = {}
        for external_id in external_ids:
            profile = Profile(external_id=external_id, **fields)
            session.add(profile)
            session.flush()
            made[external_id] = profile.id
        return made


def members(app: Flask, segment_id: str) -> dict[str, str]:
    """external_id -> membership status in the audience of ``segment_id``."""
    with runtime_of(app).sessions() as session:
        rows = session.execute(
            select(Profile.external_id, AudienceMember.status)
            .join(AudienceMember, AudienceMember.profile_id == Profile.id)
            .join(Audience, Audience.id == AudienceMember.audience_id)
            .where(Audience.segment_id == segment_id)
        )
        return {external_id: status for external_id, status in rows}


def audience(app: Flask, segment_id: str) -> Audience | None:
    with runtime_of(app).sessions() as session:
        return session.scalar(select(Audience).where(Audience.segment_id == segment_id))


def ledger(app: Flask) -> dict[str, tuple[str, str | None]]:
    """blob name -> (status, reason) of the newest ledger row of that name."""
    with runtime_of(app).sessions() as session:
        rows = session.execute(select(SyncFile.name, SyncFile.status, SyncFile.reason).order_by(SyncFile.id))
        return {name: (status, reason) for name, status, reason in rows}


def rejects(app: Flask, run_id: int) -> list[tuple[str, int, str | None, str]]:
    with runtime_of(app).sessions() as session:
        return [
            (r.file, r.line, r.identity, r.reason)
            for r in session.scalars(select(SyncReject).where(SyncReject.run_id == run_id).order_by(SyncReject.id))
        ]


SNAPSHOT_TABLES = ("profile", "audience", "audience_member", "audience_import", "sync_file")


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables an import may change, for before/after comparisons."""
    tables = {table.name: table for table in Base.metadata.sorted_tables}
    with runtime_of(app).engine.connect() as conn:
        return {
            name: sorted((tuple(row) for row in conn.execute(tables[name].select())), key=repr)
            for name in SNAPSHOT_TABLES
        }
