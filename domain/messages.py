"""A delivery's ``message``: what a marketer writes once, checked before anything is stored.

:class:`Message` is the API's input model (pydantic; its errors become the API's 400 field list).
Every field may be overridden per platform in ``ios`` / ``android`` (one level, no nesting):

- an override field that is absent or ``null`` inherits the base value; ``""`` clears a text
  field for that platform (so ``model_dump(exclude_none=True)`` round-trips exactly);
- ``data`` and ``actions`` given in an override *replace* the base ones (as FCM's ``android.data``
  replaces ``data``), they are not merged.

:func:`resolve` applies an override and the defaults, giving the :class:`ResolvedMessage` one
platform sends. The rules that involve several fields (a visible push needs a title or a body; a
silent push shows nothing) are checked on each platform's resolved message, and an error names
the field where the offending value was written (``ios.title`` or ``title``).

``title``, ``subtitle``, ``body`` and the ``data`` values are Jinja templates (see
:mod:`domain.templates`); everything else is sent as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from domain.fields import NOT_BLANK, SINGLE_LINE, storable

Platform = Literal["ios", "android"]


class Unsendable(ValueError):
    """This message cannot be sent to this subscription as built (a template that fails for the
    profile, a payload over the size limit, an id the SDKs cannot carry, an app part without its
    topic). The engine records it as an Ignored / Refused broadLog row; any other exception while
    building a message is a bug, and is not turned into a row."""


Priority = Literal["high", "normal"]
PLATFORMS: tuple[Platform, ...] = ("ios", "android")

MAX_ACTIONS = 3
MAX_DATA_KEYS = 50
MAX_TTL_SECONDS = 28 * 24 * 3600  # FCM's maximum; APNs keeps a message at most about as long
COLLAPSE_ID_MAX_BYTES = 64  # APNs apns-collapse-id limit

#: Source length limits of the templated fields (characters). Rendered lengths are bounded
#: separately, in :mod:`domain.templates`.
TITLE_SOURCE_MAX = 1024
SUBTITLE_SOURCE_MAX = 1024
BODY_SOURCE_MAX = 4096
DATA_VALUE_SOURCE_MAX = 2048
URL_MAX = 1024

#: Keys the payload builders write themselves, or that FCM refuses in ``data``: a custom ``data``
#: key may not be one of these, nor start with one of :data:`RESERVED_DATA_PREFIXES`.
RESERVED_DATA_KEYS = frozenset(
    {
        "_mId",
        "_dId",
        "_xdm",
        "_msg",
        "_acsDeliveryTracking",
        "aps",
        "uri",
        "mediaUrl",
        "media-attachment-url",
        # FCM's reserved words
        "from",
        "message_type",
        "collapse_key",
        "notification",
    }
)
RESERVED_DATA_PREFIXES = ("adb_", "google", "gcm")

_DATA_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.\-]+$")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):\S+$")
_REFUSED_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})


def _url(value: str) -> str:
    if not value.startswith("https://") or len(value) <= len("https://") or re.search(r"\s", value):
        raise PydanticCustomError("https_url", "must be an https:// URL without spaces")
    return value


def _deeplink(value: str) -> str:
    match = _URI.match(value)
    if not match:
        raise PydanticCustomError("uri", "must be a URI with a scheme and no spaces (myapp://offers/42, https://...)")
    if match.group(1).lower() in _REFUSED_SCHEMES:
        raise PydanticCustomError("uri_scheme", "the {scheme}: scheme is not allowed", {"scheme": match.group(1)})
    return value


def _multiline(value: str) -> str:
    return storable(value, multiline=True)


def _collapse_id(value: str) -> str:
    if len(value.encode()) > COLLAPSE_ID_MAX_BYTES:
        raise PydanticCustomError(
            "too_long", "must be at most {limit} bytes in UTF-8", {"limit": COLLAPSE_ID_MAX_BYTES}
        )
    return value


def _data(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_DATA_KEYS:
        raise PydanticCustomError("too_many", "at most {limit} data keys are accepted", {"limit": MAX_DATA_KEYS})
    for key in value:
        if not _DATA_KEY.match(key):
            raise PydanticCustomError(
                "data_key",
                # pydantic substitutes {key} only (no conversions): the context carries the repr
                "data key {key} must be 1-64 characters of A-Z a-z 0-9 _ . - (not starting with . or -)",
                {"key": repr(key[:70])},
            )
        if key in RESERVED_DATA_KEYS or key.lower().startswith(RESERVED_DATA_PREFIXES):
            raise PydanticCustomError(
                "reserved_key",
                "data key {key} is reserved (pushgate writes _mId, _dId, _xdm, aps, uri, mediaUrl and adb_* "
                "itself; FCM refuses from, message_type, notification and google*/gcm*)",
                {"key": repr(key)},
            )
    return value


#: Templated text: tabs and newlines allowed, other control characters and lone surrogates not.
Text = Annotated[str, AfterValidator(_multiline)]
Url = Annotated[str, Field(max_length=URL_MAX), AfterValidator(_url)]
Deeplink = Annotated[str, Field(max_length=URL_MAX), SINGLE_LINE, AfterValidator(_deeplink)]
ShortId = Annotated[str, Field(min_length=1, max_length=64), SINGLE_LINE, NOT_BLANK]
DataValue = Annotated[str, Field(max_length=DATA_VALUE_SOURCE_MAX), AfterValidator(_multiline)]
Data = Annotated[dict[str, DataValue], AfterValidator(_data)]


class Action(BaseModel):
    """A notification button. On iOS the app must register a category (``category``) whose
    action identifiers are these ``id`` values; Android builds the buttons from the payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=_TOKEN.pattern)]
    title: Annotated[str, Field(min_length=1, max_length=64), SINGLE_LINE, NOT_BLANK]
    deeplink: Deeplink | None = None


class _Fields(BaseModel):
    """Every field a platform override may set; ``None`` means "not set here"."""

    model_config = ConfigDict(extra="forbid")
    title: Annotated[Text, Field(max_length=TITLE_SOURCE_MAX)] | None = None
    subtitle: Annotated[Text, Field(max_length=SUBTITLE_SOURCE_MAX)] | None = Field(
        default=None, description="shown on iOS only"
    )
    body: Annotated[Text, Field(max_length=BODY_SOURCE_MAX)] | None = None
    image_url: Url | None = None
    deeplink: Deeplink | None = None
    sound: Annotated[str, Field(min_length=1, max_length=64, pattern=_TOKEN.pattern)] | None = Field(
        default=None, description='"default" for the system sound, else a sound file (iOS) or raw resource (Android)'
    )
    badge: Annotated[int, Field(ge=0, le=999_999)] | None = None
    category: ShortId | None = None
    actions: Annotated[list[Action], Field(max_length=MAX_ACTIONS)] | None = None
    data: Data | None = Field(default=None, description="custom string values, delivered beside the SDK's keys")
    silent: bool | None = Field(default=None, description="background push: no alert, sound or badge")
    collapse_id: Annotated[str, Field(min_length=1), SINGLE_LINE, NOT_BLANK, AfterValidator(_collapse_id)] | None = None
    ttl_seconds: Annotated[int, Field(ge=0, le=MAX_TTL_SECONDS)] | None = None
    priority: Priority | None = Field(default=None, description="high by default; normal by default when silent")
    thread_id: Annotated[str, Field(min_length=1, max_length=200), SINGLE_LINE, NOT_BLANK] | None = None
    android_channel_id: Annotated[str, Field(min_length=1, max_length=200), SINGLE_LINE, NOT_BLANK] | None = None


#: Names of the fields an override can set, in declaration order.
FIELDS: tuple[str, ...] = tuple(_Fields.model_fields)
#: Fields that only make sense for a visible notification: refused on a silent one.
DISPLAY_FIELDS = (
    "title",
    "subtitle",
    "body",
    "image_url",
    "deeplink",
    "sound",
    "badge",
    "category",
    "actions",
    "thread_id",
    "android_channel_id",
)


class PlatformOverride(_Fields):
    """Values that replace the message's own on one platform."""


class Message(_Fields):
    """A delivery's message. See the module docstring for override rules."""

    ios: PlatformOverride | None = None
    android: PlatformOverride | None = None

    @model_validator(mode="after")
    def _check_platforms(self) -> Message:
        errors: list[InitErrorDetails] = []
        seen: set[tuple[str | int, ...]] = set()
        for platform in PLATFORMS:
            for loc, kind, text in _problems(self, platform):
                if loc not in seen:  # the same base field wrong on both platforms: say it once
                    seen.add(loc)
                    errors.append(InitErrorDetails(type=PydanticCustomError(kind, text), loc=loc, input=None))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


@dataclass(frozen=True, slots=True)
class ResolvedMessage:
    """One platform's message: override applied, defaults filled, ``""`` text turned into None."""

    platform: Platform
    title: str | None = None
    subtitle: str | None = None
    body: str | None = None
    image_url: str | None = None
    deeplink: str | None = None
    sound: str | None = None
    badge: int | None = None
    category: str | None = None
    actions: tuple[Action, ...] = ()
    data: tuple[tuple[str, str], ...] = ()  # ordered (key, value) pairs; a tuple keeps the object hashable
    silent: bool = False
    collapse_id: str | None = None
    ttl_seconds: int | None = None
    priority: Priority = "high"
    thread_id: str | None = None
    android_channel_id: str | None = None


def _pick(message: Message, platform: Platform, name: str) -> tuple[Any, str | None]:
    """The value in force for ``name`` on ``platform`` and the override that set it, if any."""
    override: PlatformOverride | None = getattr(message, platform)
    if override is not None:
        value = getattr(override, name)
        if value is not None:
            return value, platform
    return getattr(message, name), None


def resolve(message: Message, platform: Platform) -> ResolvedMessage:
    """Apply ``message``'s override for ``platform`` and the defaults."""
    values: dict[str, Any] = {name: _pick(message, platform, name)[0] for name in FIELDS}
    for name in ("title", "subtitle", "body"):
        if values[name] == "":
            values[name] = None
    silent = bool(values["silent"])
    return ResolvedMessage(
        platform=platform,
        title=values["title"],
        subtitle=values["subtitle"],
        body=values["body"],
        image_url=values["image_url"],
        deeplink=values["deeplink"],
        sound=values["sound"],
        badge=values["badge"],
        category=values["category"],
        actions=tuple(values["actions"] or ()),
        data=tuple((values["data"] or {}).items()),
        silent=silent,
        collapse_id=values["collapse_id"],
        ttl_seconds=values["ttl_seconds"],
        priority=values["priority"] or ("normal" if silent else "high"),
        thread_id=values["thread_id"],
        android_channel_id=values["android_channel_id"],
    )


def _problems(message: Message, platform: Platform) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Cross-field rules on ``platform``'s resolved message: (loc, error type, text) triples."""

    def loc(name: str) -> tuple[str, ...]:
        where = _pick(message, platform, name)[1]
        return (where, name) if where else (name,)

    resolved = resolve(message, platform)
    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    if resolved.silent:
        for name in DISPLAY_FIELDS:
            value = getattr(resolved, name)
            if value not in (None, (), ""):
                problems.append(
                    (
                        loc(name),
                        "silent_display",
                        f"a silent push shows nothing, so it takes no {name} (on {platform}); "
                        "send values the app needs in data",
                    )
                )
    elif not (resolved.title and resolved.title.strip()) and not (resolved.body and resolved.body.strip()):
        where = loc("body") if _pick(message, platform, "body")[1] else loc("title")
        problems.append(
            (where, "missing_text", f"a visible push needs a title or a body (on {platform}); or set silent")
        )
    ids = [action.id for action in resolved.actions]
    if len(set(ids)) != len(ids):
        problems.append((loc("actions"), "duplicate_action", f"action ids must be unique (on {platform})"))
    return problems
