"""Push subscriptions: registration (idempotent upsert keyed by app + token), lookup, removal.

Every registration path (Campaign Classic, Campaign Standard, Edge, the native API) ends in
:func:`register`. It never creates a profile: a ``user_key`` that matches no profile leaves the
subscription unlinked, and :func:`link_profile` links it later when that profile arrives. Where the
app verifies user keys (:mod:`domain.user_keys`), :func:`check_user_key` comes first and drops a
user key that is not vouched for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from pydantic_core import PydanticCustomError
from sqlalchemy import Connection, Select, bindparam, delete, select, update
from sqlalchemy.orm import Session

from core.errors import BadRequest, NotFound
from core.secrets import SecretBox
from domain import user_keys
from domain.fields import ID_MAX, lookup_key, storable
from store.models import TOKEN_MAX, App, AppPlatform, Profile, Subscription
from store.types import utcnow
from store.upsert import upsert

DEVICE_FIELDS = (
    "device_imei",
    "device_name",
    "device_model",
    "device_brand",
    "device_manufacturer",
    "os_name",
    "os_version",
    "os_language",
)
FIELD_MAX = 255
PARAMS_MAX = 100

_HEX = re.compile(r"^[0-9a-f]+$")
_FCM = re.compile(r"^[A-Za-z0-9_:.\-]+$")


def normalise_token(platform: str, token: str) -> str:
    """Validate a push token and return its stored form.

    APNs tokens are hex and reach us in either case (lower from the Classic extension, upper
    through ``setPushIdentifier``), sometimes in the old ``<abcd ef01>`` NSData form: they are
    stored lower-case without spaces so one device is one subscription. FCM tokens are kept as
    they are, but must use FCM's alphabet.
    """
    token = token.strip()
    if not token:
        raise BadRequest("the push token is empty", code="invalid_token")
    if platform == "ios":
        token = token.strip("<>").replace(" ", "").lower()
        if not _HEX.match(token) or len(token) % 2 or not 16 <= len(token) <= 400:
            raise BadRequest("an APNs token must be an even number (16-400) of hex digits", code="invalid_token")
        return token
    if len(token) > TOKEN_MAX or not _FCM.match(token):
        raise BadRequest(f"an FCM token is at most {TOKEN_MAX} characters of A-Z a-z 0-9 _ : . -", code="invalid_token")
    return token


def check_length(name: str, value: str | None, limit: int = FIELD_MAX) -> str | None:
    """Empty strings become None; an over-long value is refused rather than cut, and so is one the
    store cannot hold (NUL and other control characters, lone surrogates)."""
    if value is None or value == "":
        return None
    if len(value) > limit:
        raise BadRequest(f"field {name} is longer than {limit} characters", code="field_too_long")
    try:
        storable(value)
    except PydanticCustomError as exc:
        raise BadRequest(f"field {name} {exc.message()}", code="invalid_field") from None
    return value


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    if len(params) > PARAMS_MAX:
        raise BadRequest(f"at most {PARAMS_MAX} additional params are accepted", code="too_many_params")
    for name, value in params.items():
        check_length(f"additional param name {name[:40]!r}", name)
        if isinstance(value, str):
            check_length(f"additional param {name[:40]!r}", value, 4096)
    return params


@dataclass
class Registration:
    """What one registration call tells us. ``None`` means "this SDK does not say", so the stored
    value is kept; ``user_key`` is the exception when ``sets_user_key`` (Classic and native send
    it on every call, and an empty one means the user logged out). ``user_key_hash`` vouches for
    the user key (:func:`check_user_key`); it is never stored."""

    app_id: int
    platform: str
    token: str
    sdk: str
    push_provider: str
    user_key: str | None = None
    sets_user_key: bool = False
    user_key_hash: str | None = None
    ecid: str | None = None
    device: dict[str, str | None] = field(default_factory=dict)
    additional_params: dict[str, Any] | None = None
    disabled: bool | None = None


def register(session: Session | Connection, reg: Registration, *, reconciliation_field: str) -> tuple[int, bool]:
    """Create or refresh the subscription for (app, token), in ``session``'s transaction (an ORM
    session or a Core connection; the caller commits). Returns (subscription id, created)."""
    now = utcnow()
    values: dict[str, Any] = {
        "app_id": reg.app_id,
        "platform": reg.platform,
        "token": normalise_token(reg.platform, reg.token),
        "sdk": reg.sdk,
        "push_provider": reg.push_provider,
        "created_at": now,
        "last_registered_at": now,
        "disabled": bool(reg.disabled),
        "additional_params": {},
    }
    updates = ["platform", "sdk", "push_provider", "last_registered_at"]
    computed = None
    if reg.sets_user_key:
        user_key = check_length("userKey", reg.user_key)
        values["user_key"] = user_key
        values["b_user_key"] = user_key
        # The profile is looked up inside the upsert itself: one statement per registration.
        computed = {"profile_id": _PROFILE_ID_OF[reconciliation_field]}
        updates += ["user_key", "profile_id"]
    if reg.ecid is not None:
        values["ecid"] = check_length("ecid", reg.ecid, 64)
        updates.append("ecid")
    for name in DEVICE_FIELDS:
        if name in reg.device:
            values[name] = check_length(name, reg.device[name])
            updates.append(name)
    if reg.additional_params is not None:
        # The hash a Classic app sends among its params is a credential: never stored.
        params = {name: value for name, value in reg.additional_params.items() if name != user_keys.HASH_PARAM}
        values["additional_params"] = check_params(params)
        updates.append("additional_params")
    if reg.disabled is not None:
        updates.append("disabled")
    # A token quarantined after APNs's 410 is released once it registers again later: that is
    # settled set-based by domain.quarantine.release_reregistered, keeping registration one statement.
    return upsert(session, Subscription, values, conflict=("app_id", "token"), update=updates, computed=computed)


def unregister(session: Session, *, app_id: int, platform: str, token: str) -> bool:
    """Remove the subscription for (app, token); True when one existed."""
    result = session.execute(
        delete(Subscription).where(
            Subscription.app_id == app_id, Subscription.token == normalise_token(platform, token)
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def link_profile(session: Session, profile: Profile, reconciliation_field: str) -> int:
    """Link the unlinked subscriptions whose user key names ``profile``; returns how many."""
    key = profile.email if reconciliation_field == "email" else profile.external_id
    if not key:
        return 0
    result = session.execute(
        update(Subscription)
        .where(Subscription.profile_id.is_(None), Subscription.user_key == key)
        .values(profile_id=profile.id)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


class KeyOwner(NamedTuple):
    """The app part an integration key names, with its app's user-key verification."""

    app_id: int
    platform: str
    user_key_verification: str = "off"
    user_key_secret: bytes | None = None  # sealed (domain.user_keys.seal)


def platform_by_integration_key(session: Session, integration_key: str) -> KeyOwner | None:
    """The app part that owns this integration key; None for an unknown key."""
    key = lookup_key(integration_key)
    if key is None:
        return None
    row = session.connection().execute(_BY_INTEGRATION_KEY, {"key": key}).first()
    return KeyOwner(row[0], row[1], row[2], row[3]) if row is not None else None


def check_user_key(reg: Registration, owner: KeyOwner, box: SecretBox) -> tuple[Registration, str | None]:
    """Apply the app's user-key verification to ``reg`` before :func:`register`. Returns the
    registration to store and why its user key was dropped (``domain.user_keys.MISSING`` or
    ``INVALID``), or None when it stands.

    A dropped user key is stored as none at all: the subscription is kept (the SDKs never retry a
    refused registration) but linked to no profile, now or later, since :func:`link_profile`,
    :func:`link_profiles` and every other use of a user key find nothing to go on. The hash comes
    from ``user_key_hash`` or, for Campaign Classic, the additional param ``userKeyHash``."""
    if not reg.sets_user_key or not reg.user_key or owner.user_key_verification == "off":
        return reg, None
    given = reg.user_key_hash
    if given is None and reg.additional_params is not None:
        param = reg.additional_params.get(user_keys.HASH_PARAM)
        given = param if isinstance(param, str) else None
    secret = None if owner.user_key_secret is None else user_keys.unseal(box, owner.user_key_secret)
    reason = user_keys.refusal(owner.user_key_verification, secret, reg.user_key, given)
    if reason is None:
        return reg, None
    return replace(reg, user_key=None), reason


# Prebuilt and run on the session's Core connection: these run on every registration, where
# statement building and the ORM's bookkeeping would cost more than the queries.
_BY_INTEGRATION_KEY = (
    select(AppPlatform.app_id, AppPlatform.platform, App.user_key_verification, App.user_key_secret)
    .join(App, App.id == AppPlatform.app_id)
    .where(AppPlatform.integration_key == bindparam("key"))
)
_PROFILE_ID_OF = {
    "external_id": select(Profile.id).where(Profile.external_id == bindparam("b_user_key")).limit(1).scalar_subquery(),
    "email": select(Profile.id)
    .where(Profile.email == bindparam("b_user_key"))
    .order_by(Profile.id)
    .limit(1)
    .scalar_subquery(),
}


def get(session: Session, subscription_id: int) -> Subscription:
    sub = session.get(Subscription, subscription_id) if 0 < subscription_id <= ID_MAX else None
    if sub is None:
        raise NotFound(f"no subscription with id {subscription_id}")
    return sub


def describe(sub: Subscription) -> dict[str, Any]:
    """The API representation: every stored field."""
    return {
        "id": sub.id,
        "app_id": sub.app_id,
        "platform": sub.platform,
        "token": sub.token,
        "sdk": sub.sdk,
        "push_provider": sub.push_provider,
        "user_key": sub.user_key,
        "profile": (
            {"id": sub.profile.id, "external_id": sub.profile.external_id} if sub.profile is not None else None
        ),
        "ecid": sub.ecid,
        "device": {name: getattr(sub, name) for name in DEVICE_FIELDS},
        "additional_params": sub.additional_params or {},
        "disabled": sub.disabled,
        "created_at": sub.created_at.isoformat(),
        "last_registered_at": sub.last_registered_at.isoformat(),
    }


def subscriptions_query(
    app_id: int, *, platform: str | None = None, user_key: str | None = None, disabled: bool | None = None
) -> Select[Subscription]:
    """The app's subscriptions, filtered by whichever of platform, user key, disabled is given."""
    stmt = select(Subscription).where(Subscription.app_id == app_id)
    if platform is not None:
        stmt = stmt.where(Subscription.platform == platform)
    if user_key is not None:
        stmt = stmt.where(Subscription.user_key == user_key)
    if disabled is not None:
        stmt = stmt.where(Subscription.disabled.is_(disabled))
    return stmt


def link_profiles(session: Session, keys: Iterable[str | None], reconciliation_field: str) -> int:
    """Set-based :func:`link_profile` for imports: link the unlinked subscriptions whose user key
    is one of ``keys`` (reconciliation field values of profiles just written) to the profile that
    key names, in one UPDATE. Returns how many subscriptions were linked."""
    wanted = sorted({key for key in keys if key})
    if not wanted:
        return 0
    column = Profile.email if reconciliation_field == "email" else Profile.external_id
    owner = select(Profile.id).where(column == Subscription.user_key).order_by(Profile.id).limit(1).scalar_subquery()
    result = session.execute(
        update(Subscription)
        .where(Subscription.profile_id.is_(None), Subscription.user_key.in_(wanted))
        .values(profile_id=owner)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
