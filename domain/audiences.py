"""Audiences: sets of profiles, one per Platform segment id, filled by the segment import.

A member whose segment status is ``exited`` stays on record (with when it left) but is not part
of the audience: deliveries never target it and ``size`` does not count it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, insert, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from domain.fields import ID_MAX
from domain.paging import keyset, split_page
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


@dataclass(frozen=True)
class FileApplied:
    """A segment file applied to an audience, and what it did to the audience's members."""

    file_id: int
    name: str
    etag: str
    run_id: int | None
    applied_at: datetime
    entered: int
    existing: int
    exited: int


def imports(session: Session, audience_id: int, limit: int = 100) -> list[FileApplied]:
    """The newest segment files that changed the audience, newest first (one query)."""
    rows = session.execute(
        select(SyncFile, AudienceImport)
        .join(AudienceImport, AudienceImport.file_id == SyncFile.id)
        .where(AudienceImport.audience_id == audience_id)
        .order_by(SyncFile.id.desc())
        .limit(limit)
    )
    return [_applied(file, imported) for file, imported in rows]


def _applied(file: SyncFile, imported: AudienceImport) -> FileApplied:
    return FileApplied(
        file_id=file.id,
        name=file.name,
        etag=file.etag,
        run_id=file.run_id,
        applied_at=file.taken_at,
        entered=imported.entered,
        existing=imported.existing,
        exited=imported.exited,
    )


def files_applied(session: Session, audience_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The newest segment files that changed the audience, newest first."""
    return [
        {
            "name": file.name,
            "etag": file.etag,
            "run_id": file.run_id,
            "applied_at": iso(file.applied_at),
            "entered": file.entered,
            "existing": file.existing,
            "exited": file.exited,
        }
        for file in imports(session, audience_id, limit)
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


def add_members(session: Session, audience_id: int, profile_ids: Sequence[int], *, now: datetime) -> int:
    """Make ``profile_ids`` current (``realized``) members of the audience, keeping those who are
    already; returns how many joined. For audiences named directly (the demo): the segment import
    stages its members and applies them set-based instead (sync/segments)."""
    present = set(
        session.scalars(
            select(AudienceMember.profile_id).where(
                AudienceMember.audience_id == audience_id, AudienceMember.profile_id.in_(profile_ids)
            )
        )
    )
    joining = [pid for pid in dict.fromkeys(profile_ids) if pid not in present]
    session.add_all(
        AudienceMember(audience_id=audience_id, profile_id=pid, status="realized", entered_at=now, updated_at=now)
        for pid in joining
    )
    session.flush()
    return len(joining)


def record_imports(session: Session, imports: Sequence[dict[str, Any]]) -> None:
    """What each applied file did to each audience: ``audience_id``, ``file_id``, ``entered``,
    ``existing``, ``exited``."""
    if imports:
        session.execute(insert(AudienceImport), list(imports))


# -- pages of the console -------------------------------------------------------------------------


@dataclass(frozen=True)
class AudienceSummary:
    """An audience as a list shows it: its current size and the last segment file applied to it."""

    audience: Audience
    size: int
    last_file: FileApplied | None


@dataclass(frozen=True)
class Member:
    """A membership with the profile fields a member list shows."""

    profile_id: int
    external_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    status: str
    entered_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Membership:
    """An audience one profile is (or was, when ``status`` is exited) a member of."""

    audience_id: int
    name: str
    segment_id: str | None
    status: str
    entered_at: datetime
    updated_at: datetime


def find(session: Session, audience_id: int) -> Audience | None:
    """The audience, or None; an id the store cannot hold is simply not found."""
    return session.get(Audience, audience_id) if 0 < audience_id <= ID_MAX else None


def last_files(session: Session, audience_ids: list[int]) -> dict[int, FileApplied]:
    """The last segment file applied to each audience (the newest in the ledger), in one query."""
    if not audience_ids:
        return {}
    newest = (
        select(AudienceImport.audience_id, func.max(AudienceImport.file_id).label("file_id"))
        .where(AudienceImport.audience_id.in_(audience_ids))
        .group_by(AudienceImport.audience_id)
        .subquery()
    )
    rows = session.execute(
        select(SyncFile, AudienceImport)
        .join(AudienceImport, AudienceImport.file_id == SyncFile.id)
        .join(
            newest,
            and_(newest.c.audience_id == AudienceImport.audience_id, newest.c.file_id == AudienceImport.file_id),
        )
    )
    return {imported.audience_id: _applied(file, imported) for file, imported in rows}


def summaries_page(
    session: Session, *, segment_id: str | None, after: int | None, limit: int
) -> tuple[list[AudienceSummary], int | None]:
    """One page of audiences in id order after the id ``after`` (keyset paging, as the API's
    list), with their sizes and last files: three queries whatever the page size. Returns the
    page and the id the next page starts after (None on the last page)."""
    found = session.scalars(keyset(list_query(segment_id), Audience.id, after=after, limit=limit)).all()
    rows, next_after = split_page(found, limit, lambda a: a.id)
    ids = [a.id for a in rows]
    size, last = sizes(session, ids), last_files(session, ids)
    return [AudienceSummary(a, size.get(a.id, 0), last.get(a.id)) for a in rows], next_after


def status_counts(session: Session, audience_id: int) -> dict[str, int]:
    """How many members of the audience are in each segment status, exited included (one query)."""
    rows = session.execute(
        select(AudienceMember.status, func.count())
        .where(AudienceMember.audience_id == audience_id)
        .group_by(AudienceMember.status)
    )
    return {status: int(count) for status, count in rows}


def members_page(
    session: Session, audience_id: int, status: str | None, *, after: int | None, limit: int
) -> tuple[list[Member], int | None]:
    """One page of the audience's members (as :func:`members_query` selects them: current members
    unless ``status`` names one) in profile id order after ``after``, with their profiles' names
    and e-mails: one query. Returns the page and the profile id the next page starts after."""
    stmt = (
        members_query(audience_id, status)
        .add_columns(Profile.external_id, Profile.email, Profile.first_name, Profile.last_name)
        .join(Profile, Profile.id == AudienceMember.profile_id)
    )
    found = session.execute(keyset(stmt, AudienceMember.profile_id, after=after, limit=limit)).all()
    rows, next_after = split_page(found, limit, lambda row: int(row[0].profile_id))
    page = [
        Member(
            profile_id=m.profile_id,
            external_id=external_id,
            email=email,
            first_name=first_name,
            last_name=last_name,
            status=m.status,
            entered_at=m.entered_at,
            updated_at=m.updated_at,
        )
        for m, external_id, email, first_name, last_name in rows
    ]
    return page, next_after


def of_profile(session: Session, profile_id: int) -> list[Membership]:
    """The audiences the profile is a member of, current ones first, then those it left (one
    query over the membership's profile index)."""
    rows = session.execute(
        select(AudienceMember, Audience.name, Audience.segment_id)
        .join(Audience, Audience.id == AudienceMember.audience_id)
        .where(AudienceMember.profile_id == profile_id)
        .order_by(Audience.name, Audience.id)
    )
    found = [
        Membership(m.audience_id, name, segment_id, m.status, m.entered_at, m.updated_at)
        for m, name, segment_id in rows
    ]
    return sorted(found, key=lambda m: m.status == "exited")
