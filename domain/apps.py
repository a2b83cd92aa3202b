"""Apps (Campaign's push services): creation, change, removal, and their API representation.

An app has an iOS part, an Android part, or both (rows of ``app_platform``), each with its own
integration key, store identifier and sealed provider credentials (see :mod:`domain.credentials`).
An app may verify the user keys its registrations send (:mod:`domain.user_keys`), with a secret
made here: at a creation that turns verification on, or by :func:`rotate_user_key_secret`.
Functions take a Session and flush; the caller commits. Name, integration keys, Campaign Standard
pkey and Edge config id are unique: each is checked before writing so the 409 names the field,
and a race lost at the database is still a 409 (the session is then rolled back).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from core.errors import BadRequest, Conflict, NotFound
from core.secrets import SecretBox, new_integration_key
from domain import user_keys
from domain.credentials import (
    ApnsCredentials,
    FcmCredentials,
    apply_apns,
    apply_fcm,
    public_view,
    token_uri_problem,
)
from domain.fields import ID_MAX, FormId, Name, UrlId, lookup_key
from store.models import App, AppPlatform, Delivery
from store.types import utcnow

BundleId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")]
PackageName = Annotated[str, Field(max_length=255, pattern=r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")]
KEY_NOTE = "generated when absent; null in a PATCH generates a new one"
VERIFICATION_NOTE = (
    "whether a registration's user key must come with user_key_hash (native) or the additional param "
    "userKeyHash (Campaign Classic), HMAC-SHA256(the app's user-key secret, user key) in hex, to link a "
    "profile. off: never checked; optional: a hash sent must be right, none links as before; required: "
    "only a right hash links. A user key not vouched for is stored unlinked, never refused"
)


class IosPatch(BaseModel):
    """The iOS part; in a PATCH, fields given replace the stored ones, ``apns: null`` removes them."""

    model_config = ConfigDict(extra="forbid")
    bundle_id: BundleId | None = None
    integration_key: FormId | None = Field(default=None, description=KEY_NOTE)
    apns: ApnsCredentials | None = None


class IosCreate(IosPatch):
    bundle_id: BundleId


class AndroidPatch(BaseModel):
    """The Android part; in a PATCH, fields given replace the stored ones, ``fcm: null`` removes them."""

    model_config = ConfigDict(extra="forbid")
    package_name: PackageName | None = None
    integration_key: FormId | None = Field(default=None, description=KEY_NOTE)
    fcm: FcmCredentials | None = None


class AndroidCreate(AndroidPatch):
    package_name: PackageName


class AppPatch(BaseModel):
    """A change to an app: fields omitted are kept; ``"ios": null`` / ``"android": null`` remove
    that platform (its subscriptions are kept, and serve again if the platform is added back);
    null clears the optional identifiers."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    ios: IosPatch | None = None
    android: AndroidPatch | None = None
    campaign_standard_pkey: UrlId | None = Field(
        default=None, description="as Campaign Standard shows it: @ and URL-safe base64 (120 to 199 characters seen)"
    )
    edge_config_id: UrlId | None = Field(default=None, description="the datastream id: a UUID, or {id}:{environment}")
    experience_cloud_org: UrlId | None = Field(default=None, description="the IMS org id, such as …@AdobeOrg")
    user_key_verification: user_keys.Mode | None = Field(
        default=None,
        description=VERIFICATION_NOTE + "; turning it on needs a secret: POST /api/v1/apps/{app_id}/user-key-secret",
    )

    @field_validator("name", "user_key_verification")
    @classmethod
    def _not_null(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            raise PydanticCustomError("required", "{field} cannot be removed", {"field": info.field_name})
        return value


class AppCreate(AppPatch):
    name: Name
    ios: IosCreate | None = None
    android: AndroidCreate | None = None
    user_key_verification: user_keys.Mode = Field(
        default="off",
        description=VERIFICATION_NOTE + "; optional or required makes the app's secret, shown once in the answer",
    )

    @model_validator(mode="after")
    def _one_platform(self) -> AppCreate:
        if self.ios is None and self.android is None:
            raise PydanticCustomError("platform_required", "an app needs ios, android or both")
        return self


def list_query(apps: frozenset[int] | None = None) -> Select[App]:
    """Every app, or ``apps`` only."""
    stmt = select(App).options(selectinload(App.platforms))
    return stmt if apps is None else stmt.where(App.id.in_(sorted(apps)))


def listing(session: Session, after: int | None = None, limit: int = 50) -> list[App]:
    """Up to ``limit`` apps in id order, those after id ``after`` only when given, platforms
    loaded (the console's list pages through them this way)."""
    stmt = list_query().order_by(App.id).limit(limit)
    if after is not None:
        stmt = stmt.where(App.id > after)
    return list(session.scalars(stmt))


def names(session: Session) -> dict[int, str]:
    """Every app's name by id, in name order (the console's app filters and pickers)."""
    return {app_id: name for app_id, name in session.execute(select(App.id, App.name).order_by(App.name, App.id))}


def get_app(session: Session, app_id: int) -> App:
    app = session.get(App, app_id) if 0 < app_id <= ID_MAX else None
    if app is None:
        raise NotFound(f"no app with id {app_id}")
    return app


def find_app(session: Session, ref: str) -> App:
    """The app whose id is ``ref`` or, failing that, whose name is ``ref`` (names are unique)."""
    if ref.isdigit():
        try:
            return get_app(session, int(ref))
        except NotFound:
            pass  # an app may be named with digits
    app = by_name(session, ref)
    if app is None:
        raise NotFound(f"no app with id or name {ref!r}; list them with GET /api/v1/apps")
    return app


def by_name(session: Session, name: str) -> App | None:
    return session.scalar(select(App).where(App.name == name))


def by_edge_config(session: Session, config_id: str) -> App | None:
    """The app whose Edge datastream id is ``config_id``; None when none is (or the value could
    not be one: public callers send anything)."""
    if not lookup_key(config_id):
        return None
    return session.scalar(select(App).where(App.edge_config_id == config_id))


def id_by_standard_pkey(session: Session, pkey: str) -> int | None:
    """The id of the app whose Campaign Standard pkey is ``pkey``; None when none is."""
    if not lookup_key(pkey):
        return None
    return session.scalar(select(App.id).where(App.campaign_standard_pkey == pkey))


def create_app(session: Session, box: SecretBox, data: AppCreate, *, any_token_uri: bool = False) -> App:
    """Insert the app; absent integration keys are generated, and so is the user-key secret when
    verification is on (read it once with :func:`user_key_secret`). 409 on any duplicate; 400 for
    an FCM service account whose token_uri is not Google's, unless ``any_token_uri`` (see
    :func:`domain.credentials.token_uri_problem`)."""
    _check_token_uri(data, any_token_uri)
    app = App(
        name=data.name,
        campaign_standard_pkey=data.campaign_standard_pkey,
        edge_config_id=data.edge_config_id,
        experience_cloud_org=data.experience_cloud_org,
        user_key_verification=data.user_key_verification,
    )
    if data.user_key_verification != "off":
        app.user_key_secret = user_keys.seal(box, user_keys.new_secret())
    _check_unique(session, None, data)
    if data.ios is not None:
        app.platforms.append(_platform("ios", data.ios, box))
    if data.android is not None:
        app.platforms.append(_platform("android", data.android, box))
    session.add(app)
    _flush(session)
    return app


def update_app(session: Session, box: SecretBox, app_id: int, data: AppPatch, *, any_token_uri: bool = False) -> App:
    """Apply the fields present in ``data`` (see :class:`AppPatch`). 409 on any duplicate, and for
    turning user-key verification on in an app without a secret (make it first: the app's backend
    needs it before any app in the field can send a hash); 400 as :func:`create_app` for an FCM
    token_uri."""
    app = get_app(session, app_id)
    _check_token_uri(data, any_token_uri)
    given = data.model_fields_set
    _check_unique(session, app.id, data)
    if data.user_key_verification not in (None, "off") and app.user_key_secret is None:
        raise Conflict(
            f"app {app.id} has no user-key secret yet: make one with POST /api/v1/apps/{app.id}/user-key-secret "
            "(shown once), give it to your backend, then turn user_key_verification on",
            code="user_key_secret_missing",
        )
    for name in ("name", "campaign_standard_pkey", "edge_config_id", "experience_cloud_org", "user_key_verification"):
        if name in given:
            setattr(app, name, getattr(data, name))
    for platform in ("ios", "android"):
        if platform not in given:
            continue
        patch: IosPatch | AndroidPatch | None = getattr(data, platform)
        current = next((p for p in app.platforms if p.platform == platform), None)
        if patch is None:
            if current is not None:
                app.platforms.remove(current)
        elif current is None:
            _require_identifier(platform, patch)
            app.platforms.append(_platform(platform, patch, box))
        else:
            _apply(current, patch, box)
    if not app.platforms:
        raise Conflict("an app needs ios, android or both; add one before removing the other", code="platform_required")
    app.updated_at = utcnow()  # also when only a platform row changed
    _flush(session)
    return app


def rotate_user_key_secret(session: Session, box: SecretBox, app_id: int) -> tuple[App, str]:
    """Give the app a new user-key secret, whatever its verification mode (an app turns it on once
    its backend holds one); returns the app and the secret, to show once. Hashes made with the
    previous secret stop vouching at once."""
    app = get_app(session, app_id)
    secret = user_keys.new_secret()
    app.user_key_secret = user_keys.seal(box, secret)
    app.updated_at = utcnow()
    _flush(session)
    return app, secret


def user_key_secret(app: App, box: SecretBox) -> str | None:
    """The app's user-key secret in clear; None when it has none. The API shows it only in the
    answer that made it."""
    return None if app.user_key_secret is None else user_keys.unseal(box, app.user_key_secret)


def delete_app(session: Session, app_id: int) -> None:
    """Remove the app with its platforms and subscriptions; 409 while deliveries reference it."""
    app = get_app(session, app_id)
    if session.scalar(select(Delivery.id).where(Delivery.app_id == app.id).limit(1)) is not None:
        raise Conflict(
            f"app {app.id} cannot be deleted: deliveries reference it (they keep its history)",
            code="app_in_use",
        )
    session.delete(app)
    _flush(session, f"app {app_id} cannot be deleted: a delivery referencing it was created meanwhile")


def describe(app: App, box: SecretBox) -> dict[str, Any]:
    """The API representation; credentials appear only through their public parts."""
    parts = {p.platform: p for p in app.platforms}
    return {
        "id": app.id,
        "name": app.name,
        "ios": _describe_part(parts.get("ios"), box, "bundle_id", "apns"),
        "android": _describe_part(parts.get("android"), box, "package_name", "fcm"),
        "campaign_standard_pkey": app.campaign_standard_pkey,
        "edge_config_id": app.edge_config_id,
        "experience_cloud_org": app.experience_cloud_org,
        "user_key_verification": app.user_key_verification,
        "user_key_secret_set": app.user_key_secret is not None,
        "created_at": app.created_at.isoformat(),
        "updated_at": app.updated_at.isoformat(),
    }


def _describe_part(row: AppPlatform | None, box: SecretBox, identifier: str, provider: str) -> dict[str, Any] | None:
    if row is None:
        return None
    return {identifier: row.app_identifier, "integration_key": row.integration_key, provider: public_view(row, box)}


def _require_identifier(platform: str, patch: IosPatch | AndroidPatch) -> None:
    """A PATCH that adds a platform must say what a creation says."""
    identifier = "bundle_id" if platform == "ios" else "package_name"
    if getattr(patch, identifier) is None:
        raise BadRequest(
            f"invalid field {platform}.{identifier}: required to add the {platform} platform", code="invalid_request"
        )


def _platform(platform: str, data: IosPatch | AndroidPatch, box: SecretBox) -> AppPlatform:
    row = AppPlatform(platform=platform, integration_key=data.integration_key or new_integration_key())
    _apply(row, data, box)
    return row


def _apply(row: AppPlatform, data: IosPatch | AndroidPatch, box: SecretBox) -> None:
    given = data.model_fields_set
    if "integration_key" in given:
        row.integration_key = data.integration_key or new_integration_key()
    if isinstance(data, IosPatch):
        if data.bundle_id is not None:
            row.app_identifier = data.bundle_id
        if "apns" in given:
            apply_apns(row, box, data.apns)
    else:
        if data.package_name is not None:
            row.app_identifier = data.package_name
        if "fcm" in given:
            apply_fcm(row, box, data.fcm)


def _check_token_uri(data: AppPatch, any_token_uri: bool) -> None:
    fcm = data.android.fcm if data.android is not None else None
    if fcm is None:
        return
    problem = token_uri_problem(fcm.service_account.token_uri, any_host=any_token_uri)
    if problem is not None:
        raise BadRequest(f"android.fcm.service_account.token_uri: {problem}", code="invalid_token_uri")


def _check_unique(session: Session, app_id: int | None, data: AppPatch) -> None:
    for field in ("name", "campaign_standard_pkey", "edge_config_id"):
        value = getattr(data, field)
        if value is None:
            continue
        stmt = select(App.id).where(getattr(App, field) == value)
        if app_id is not None:
            stmt = stmt.where(App.id != app_id)
        other = session.scalar(stmt.limit(1))
        if other is not None:
            raise Conflict(f"app {other} already has {field} {value!r}; it must be unique", code=f"duplicate_{field}")
    keys = {
        p: part.integration_key
        for p in ("ios", "android")
        if (part := getattr(data, p)) is not None and part.integration_key is not None
    }
    if len(set(keys.values())) < len(keys):
        raise Conflict("ios and android need different integration keys", code="duplicate_integration_key")
    for platform, key in keys.items():
        users = select(AppPlatform.app_id, AppPlatform.platform).where(AppPlatform.integration_key == key)
        for other_app, other_platform in session.execute(users):
            if (other_app, other_platform) != (app_id, platform):
                raise Conflict(
                    f"the {platform} integration key is already used by app {other_app} "
                    f"({other_platform}); integration keys must be unique",
                    code="duplicate_integration_key",
                )


_RACE = (
    "another app with the same name, integration key, campaign_standard_pkey or edge_config_id "
    "was written at the same time; retry"
)


def _flush(session: Session, message: str = _RACE) -> None:
    try:
        session.flush()
    except IntegrityError:
        # A concurrent request changed the data between our checks and our write.
        session.rollback()
        raise Conflict(message) from None
