"""API keys: creation (the only moment the key is shown), listing, revocation, verification.

A key has a role (viewer < marketer < admin) and may be limited to some apps: such a key sees and
acts on those apps' subscriptions, deliveries, quarantine and SDK configurations only, cannot
create apps, manage keys or run sync jobs, and cannot erase profiles unless it is admin. A key
limited to no app reaches every app its role allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.errors import BadRequest, NotFound
from core.secrets import api_key_matches, new_api_key, split_api_key
from store.models import ApiKey, ApiKeyApp, App
from store.types import utcnow

Role = Literal["admin", "marketer", "viewer"]
ROLES: tuple[Role, ...] = ("viewer", "marketer", "admin")


def role_allows(held: str, needed: Role) -> bool:
    """Roles are ranked: admin can do what a marketer can, a marketer what a viewer can."""
    return held in ROLES and ROLES.index(held) >= ROLES.index(needed)


@dataclass(frozen=True)
class Scope:
    """What a key may reach: its role, and the apps it is limited to (None: every app)."""

    role: str
    apps: frozenset[int] | None = None

    def reaches(self, app_id: int) -> bool:
        return self.apps is None or app_id in self.apps


def scope_of(key: ApiKey) -> Scope:
    apps = frozenset(link.app_id for link in key.app_ids)
    return Scope(key.role, apps or None)


def create_key(session: Session, *, name: str, role: str, apps: Iterable[int] = ()) -> tuple[ApiKey, str]:
    """Store a new key (limited to ``apps`` when some are given) and return it with the full
    secret, which is never stored or shown again."""
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}", code="invalid_request")
    name = name.strip()
    if not name or len(name) > 200:
        raise BadRequest("name must be 1 to 200 characters", code="invalid_request")
    app_ids = sorted(set(apps))
    known = set(session.scalars(select(App.id).where(App.id.in_(app_ids)))) if app_ids else set()
    unknown = [str(app_id) for app_id in app_ids if app_id not in known]
    if unknown:
        raise BadRequest(f"no app with id {', '.join(unknown)}", code="unknown_app")
    full, lookup, key_hash = new_api_key()
    key = ApiKey(name=name, role=role, lookup=lookup, key_hash=key_hash)
    key.app_ids = [ApiKeyApp(app_id=app_id) for app_id in app_ids]
    session.add(key)
    session.flush()
    return key, full


def list_query(*, include_revoked: bool = False) -> Select[ApiKey]:
    """Keys, live ones only unless ``include_revoked``; for the CLI and the paginated API list."""
    stmt = select(ApiKey)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return stmt


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    return list(session.scalars(list_query(include_revoked=include_revoked).order_by(ApiKey.id)))


def revoke_key(session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id) if 0 < key_id <= 2**31 - 1 else None  # larger ids cannot exist
    if key is None:
        raise NotFound(f"no API key with id {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def authenticate(session: Session, presented: str) -> ApiKey | None:
    """The live key matching ``presented``, or None (unknown, malformed or revoked)."""
    lookup = split_api_key(presented)
    if lookup is None:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.lookup == lookup))
    if key is None or key.revoked_at is not None or not api_key_matches(presented, key.key_hash):
        return None
    return key


def describe(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "prefix": f"pgk_{key.lookup}",
        "apps": sorted(link.app_id for link in key.app_ids) or None,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
