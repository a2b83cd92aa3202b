"""Audiences: sets of profiles, one per Platform segment id, filled by the segment import.

A member whose segment status is ``exited`` stays on record (with when it left) but is not part
of the audience: deliveries never target it and ``size`` does not count it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from store.models import Audience, AudienceImport, AudienceMember, Profile, SyncFile
from store.types import iso
from store.upsert import upsert

MEMBER_STATUSES = ("realized", "existing", "exited")


def get(session: Session, audience_id: int) -> Audience:
    audience = session.get(Audience, audience_id)
    if audience is None:
        raise NotFound(f"no audience with id {audience_id}", code="unknown_audience")
    return audience


def list_query(segment_id: str | None = None) -> Select[Audience]:
    stmt = select(Audience)
    if segment_id is not None:
        stmt = stmt.where(Audience.segment_id == segment_id)
    return stmt


def sizes(session: Session, audience_ids: list[int]) -> dict[int, int]:
    """Current members (not exited) per audience."""
    if not audience_ids:
        return {}
    rows = session.execute(
        select(AudienceMember.audience_id, func.count())
        .where(AudienceMember.audience_id.in_(audience_ids), AudienceMember.status != "exited")
        .group_by(AudienceMember.audience_id)
    )
    return {audience_id: int(count) for audience_id, count in rows}


def describe(audience: Audience, size: int, files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": audience.id,
        "name": audience.name,
        "segment_id": audience.segment_id,
        "size": size,
        "last_import_at": iso(audience.last_import_at),
        "created_at": iso(audience.created_at),
    }
    if files is not None:
        out["files_applied"] = files
    return out


def files_applied(session: Session, audience_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The newest segment files that changed the audience, newest first."""
    rows = session.execute(
        select(SyncFile, AudienceImport)
        .join(AudienceImport, AudienceImport.file_id == SyncFile.id)
        .where(AudienceImport.audience_id == audience_id)
        .order_by(SyncFile.id.desc())
        .limit(limit)
    )
    return [
        {
            "name": file.name,
            "etag": file.etag,
            "run_id": file.run_id,
            "applied_at": iso(file.taken_at),
            "entered": imported.entered,
            "existing": imported.existing,
            "exited": imported.exited,
        }
        for file, imported in rows
    ]


def members_query(audience_id: int, status: str | None) -> Select[AudienceMember]:
    stmt = select(AudienceMember).where(AudienceMember.audience_id == audience_id)
    if status is None:
        return stmt.where(AudienceMember.status != "exited")
    return stmt.where(AudienceMember.status == status)


def describe_members(session: Session, members: list[AudienceMember]) -> list[dict[str, Any]]:
    ids = [m.profile_id for m in members]
    external = {
        pid: ext for pid, ext in session.execute(select(Profile.id, Profile.external_id).where(Profile.id.in_(ids)))
    }
    return [
        {
            "profile_id": m.profile_id,
            "external_id": external.get(m.profile_id),
            "status": m.status,
            "entered_at": iso(m.entered_at),
            "updated_at": iso(m.updated_at),
        }
        for m in members
    ]


def for_segment(session: Session, segment_id: str, name: str, *, rename: bool, now: datetime) -> int:
    """The id of the audience of ``segment_id``, created on first sight with ``name``; an existing
    one is renamed only with ``rename`` (a name configured for the segment wins over the default)."""
    audience_id, _ = upsert(
        session,
        Audience,
        {"name": name[:255], "segment_id": segment_id, "created_at": now, "updated_at": now, "last_import_at": now},
        conflict=["segment_id"],
        update=["last_import_at", "updated_at", *(["name"] if rename else [])],
    )
    return int(audience_id)


def record_imports(session: Session, imports: Sequence[dict[str, Any]]) -> None:
    """What each applied file did to each audience: ``audience_id``, ``file_id``, ``entered``,
    ``existing``, ``exited``."""
    if imports:
        session.execute(insert(AudienceImport), list(imports))
