"""Profiles (Campaign's recipients): upsert by external id, lookup, listing and erasure.

Campaign is the source of truth, so a profile is written whole or in part by its external id
(PUT semantics: fields omitted keep their stored value). After each upsert, subscriptions that
registered earlier with a user key naming this profile are linked to it. Profile files of the
sync module go through :func:`import_profiles`, a set-based batch form that merges attributes key
by key rather than replacing them.

Erasure is :mod:`domain.erasure`. Functions flush; the caller commits. Log lines name profiles by
internal id only, never by external id or e-mail.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import BadRequest, Conflict, NotFound
from domain.fields import ATTRIBUTES_MAX_BYTES, SINGLE_LINE, Attributes, Email, check_json, storable
from domain.subscriptions import link_profile, link_profiles
from store.clock import stamp
from store.models import Profile, Subscription
from store.upsert import upsert_many

log = logging.getLogger("pushgate.profiles")

EXTERNAL_ID_MAX = 255
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|[0-9]{3}))?$")


def _locale(value: str) -> str:
    """``en-US``, ``fr``, ``zh-Hans-CN``; ``en_us`` is accepted and stored as ``en-US``."""
    match = _LOCALE.match(value)
    if match is None:
        raise PydanticCustomError("locale", "not a locale such as en-US (language[-Script][-REGION])")
    language, script, region = match.groups()
    parts = [language.lower(), script.title() if script else "", region.upper() if region else ""]
    return "-".join(part for part in parts if part)


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(value: str) -> str:
    # Membership in the tz database, rather than ZoneInfo(value), so that no path-like or odd
    # key ever reaches the file system lookup.
    if value not in _zones():
        raise PydanticCustomError("timezone", "not an IANA time zone such as Europe/Paris")
    return value


PersonName = Annotated[str, Field(max_length=200), SINGLE_LINE]
Locale = Annotated[str, Field(max_length=35), AfterValidator(_locale)]
TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]


class ProfileIn(BaseModel):
    """A profile's fields; in an upsert, fields omitted keep their stored value and null clears the
    nullable ones."""

    model_config = ConfigDict(extra="forbid")
    email: Email | None = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    locale: Locale | None = Field(default=None, description="language[-Script][-REGION], such as en-US")
    timezone: TimeZone | None = Field(default=None, description="IANA time zone, such as Europe/Paris")
    attributes: Attributes = Field(
        default_factory=dict, description="free JSON object, at most 16 KiB once encoded; replaced whole"
    )
    push_consent: Literal["y", "n", "u"] = Field(default="u", description="yes, no, unknown")


def check_external_id(external_id: str) -> str:
    """Refuse an external id the store cannot hold (a 400, so a bad path is never a 500)."""
    if not external_id.strip() or len(external_id) > EXTERNAL_ID_MAX:
        raise BadRequest(f"external_id must be 1 to {EXTERNAL_ID_MAX} characters", code="invalid_external_id")
    try:
        storable(external_id)
    except PydanticCustomError as exc:
        raise BadRequest(f"external_id {exc.message()}", code="invalid_external_id") from None
    return external_id


def find(session: Session, external_id: str) -> Profile | None:
    return session.scalar(select(Profile).where(Profile.external_id == check_external_id(external_id)))


def get_profile(session: Session, external_id: str) -> Profile:
    profile = find(session, external_id)
    if profile is None:
        raise NotFound("no profile with this external_id")
    return profile


def upsert_profile(
    session: Session, external_id: str, data: ProfileIn, *, reconciliation_field: str
) -> tuple[Profile, bool]:
    """Create or update the profile; returns (profile, created). Then links waiting subscriptions.

    Two concurrent creations of the same external id: the loser's insert fails on the unique
    constraint, its session is rolled back and the call is retried once as an update.
    """
    for attempt in (1, 2):
        profile = find(session, external_id)
        created = profile is None
        if profile is None:
            profile = Profile(external_id=external_id, attributes={}, push_consent="u")
            session.add(profile)
        for name in data.model_fields_set:
            setattr(profile, name, getattr(data, name))
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            if attempt == 2:
                raise Conflict("the profile was changed concurrently; retry") from None
            continue
        linked = link_profile(session, profile, reconciliation_field)
        if linked:
            log.info("profile %s linked to %d earlier subscriptions", profile.id, linked)
        return profile, created
    raise AssertionError("unreachable")  # pragma: no cover


def list_query(email: str | None = None) -> Select[Profile]:
    stmt = select(Profile)
    if email is not None:
        stmt = stmt.where(Profile.email == email)
    return stmt


def subscription_ids(
    session: Session, profile_ids: Iterable[int], apps: frozenset[int] | None = None
) -> dict[int, list[int]]:
    """The subscription ids linked to each profile (of ``apps`` only, when given), in one query."""
    found: dict[int, list[int]] = defaultdict(list)
    ids = list(profile_ids)
    if ids:
        stmt = select(Subscription.profile_id, Subscription.id).where(Subscription.profile_id.in_(ids))
        if apps is not None:
            stmt = stmt.where(Subscription.app_id.in_(sorted(apps)))
        rows = session.execute(stmt.order_by(Subscription.id))
        for profile_id, sub_id in rows:
            if profile_id is not None:
                found[profile_id].append(sub_id)
    return found


def describe(profile: Profile, subscriptions: list[int]) -> dict[str, Any]:
    """The API representation, with the ids of the subscriptions linked to the profile."""
    return {
        "id": profile.id,
        "external_id": profile.external_id,
        "email": profile.email,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "locale": profile.locale,
        "timezone": profile.timezone,
        "attributes": profile.attributes or {},
        "push_consent": profile.push_consent,
        "subscription_count": len(subscriptions),
        "subscription_ids": subscriptions,
        "created_at": profile.created_at.isoformat(),
        "updated_at": profile.updated_at.isoformat(),
    }


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


# -- imports (profile files) ----------------------------------------------------------------------

#: Fields an import may set besides attributes and consent; a missing value keeps the stored one.
IMPORT_FIELDS = ("email", "first_name", "last_name", "locale", "timezone")


@dataclass(frozen=True)
class ImportedProfile:
    """One profile of an import: the fields it gives (validated through :class:`ProfileIn`) and
    the attributes to merge into the stored ones. A field it does not give keeps its stored value."""

    external_id: str
    fields: dict[str, Any]
    attributes: dict[str, Any]


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    linked: int = 0
    #: external_id -> why the profile was not written
    refused: dict[str, str] = field(default_factory=dict)


def import_profiles(
    session: Session, profiles: Sequence[ImportedProfile], *, reconciliation_field: str
) -> ImportResult:
    """Upsert a batch of profiles set-based (one SELECT, one INSERT ... ON CONFLICT, one UPDATE of
    subscriptions), then link the subscriptions that registered earlier with a user key naming one
    of them.

    Merge rules: fields given replace the stored ones, fields not given are kept; attributes are
    merged key by key (a key given replaces the stored value, other stored keys stay); consent
    defaults to ``u`` for a new profile. The same external id twice in the batch: the later one
    wins field by field. A profile whose merged attributes would exceed the API's limit is
    refused (see :attr:`ImportResult.refused`) and left as it was.
    """
    result = ImportResult()
    batch: dict[str, ImportedProfile] = {}
    for given in profiles:
        earlier = batch.get(given.external_id)
        batch[given.external_id] = (
            given
            if earlier is None
            else ImportedProfile(
                given.external_id, {**earlier.fields, **given.fields}, {**earlier.attributes, **given.attributes}
            )
        )
    if not batch:
        return result
    # FOR UPDATE on PostgreSQL (SQLite has one writer at a time anyway): the rows read here are
    # the rows merged into, until the transaction ends.
    stored = {
        row.external_id: row
        for row in session.execute(
            select(Profile.external_id, Profile.email, Profile.attributes, Profile.push_consent)
            .where(Profile.external_id.in_(list(batch)))
            .with_for_update()
        )
    }
    now = stamp(session)  # updated_at is read by the export in commit order
    values: list[dict[str, Any]] = []
    reconciliation_keys: list[str | None] = []
    for external_id, profile in batch.items():
        old = stored.get(external_id)
        attributes = profile.attributes
        if old is not None and isinstance(old.attributes, dict) and old.attributes:
            attributes = {**old.attributes, **profile.attributes}
        try:
            check_json(attributes, max_bytes=ATTRIBUTES_MAX_BYTES, what="attributes once merged")
        except PydanticCustomError as exc:
            result.refused[external_id] = exc.message()
            continue
        consent = profile.fields.get("push_consent") or (old.push_consent if old is not None else "u")
        row = {name: profile.fields.get(name) for name in IMPORT_FIELDS}
        values.append(
            {"external_id": external_id, **row, "attributes": attributes, "push_consent": consent}
            | {"created_at": now, "updated_at": now}
        )
        if old is None:
            result.created += 1
        else:
            result.updated += 1
        if reconciliation_field == "email":
            reconciliation_keys.append(row["email"] or (old.email if old is not None else None))
        else:
            reconciliation_keys.append(external_id)
    upsert_many(
        session,
        Profile,
        values,
        conflict=("external_id",),
        update=(*IMPORT_FIELDS, "attributes", "push_consent", "updated_at"),
        keep_when_null=IMPORT_FIELDS,
    )
    result.linked = link_profiles(session, reconciliation_keys, reconciliation_field)
    return result
