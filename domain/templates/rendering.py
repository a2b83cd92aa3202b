"""Message templates at send time (and for the preview): the render context built from store rows,
and :func:`render`, which renders a compiled message for one profile and subscription
(:class:`RenderProblem` for that message only). The rules are described in :mod:`domain.templates`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from jinja2.exceptions import SecurityError
from jinja2.runtime import Context

from domain.messages import ResolvedMessage, Unsendable
from domain.templates.compiling import CompiledMessage, CompiledTemplate, data_limit, json_len
from domain.templates.sandbox import ELLIPSIS, PROFILE_FIELDS, SANDBOX, SUBSCRIPTION_FIELDS, TEXT_LIMITS, Record

_UNCLEAN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class RenderProblem(Unsendable):
    """Rendering one message failed at send time; only that message is affected."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"message.{field}: {problem}")
        self.field = field
        self.problem = problem


# -- the render context ---------------------------------------------------------------------------


class ProfileLike(Protocol):
    external_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any]


class SubscriptionLike(Protocol):
    platform: str
    sdk: str
    push_provider: str
    user_key: str | None
    device_name: str | None
    device_model: str | None
    device_brand: str | None
    device_manufacturer: str | None
    os_name: str | None
    os_version: str | None
    os_language: str | None
    additional_params: dict[str, Any]


Tables = Mapping[str, Mapping[str, Mapping[str, Any]]]
_NO_TABLES: Tables = {}


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a template sees for one message. ``subscription["platform"]`` picks the platform."""

    profile: Mapping[str, Any]
    subscription: Mapping[str, Any]
    tables: Tables = field(default_factory=dict)

    @property
    def platform(self) -> str:
        return str(self.subscription.get("platform", ""))


def profile_context(profile: ProfileLike | None) -> dict[str, Any]:
    """The ``profile`` mapping for a profile row (or an empty one for an unlinked subscription)."""
    if profile is None:
        return {}
    values: dict[str, Any] = {name: getattr(profile, name) for name in PROFILE_FIELDS}
    values["attributes"] = profile.attributes or {}
    return values


def subscription_context(subscription: SubscriptionLike) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(subscription, name) for name in SUBSCRIPTION_FIELDS}
    values["additional_params"] = subscription.additional_params or {}
    return values


def make_context(
    profile: ProfileLike | None, subscription: SubscriptionLike, tables: Tables | None = None
) -> RenderContext:
    """Build a :class:`RenderContext` from store rows (anything with the same attributes)."""
    return RenderContext(
        profile_context(profile), subscription_context(subscription), _NO_TABLES if tables is None else tables
    )


# -- rendering ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderedMessage(ResolvedMessage):
    """A resolved message whose title, subtitle, body and data values are rendered text."""


def _clean(text: str) -> str:
    return _UNCLEAN.sub("", text) if _UNCLEAN.search(text) else text


def _run(template: CompiledTemplate, context: Context | None, limit: int) -> tuple[str, bool]:
    """Render, stopping once past ``limit`` characters; returns (text, cut)."""
    if template.static is not None:
        text = template.static
    else:
        assert template.template is not None and context is not None
        pieces: list[str] = []
        size = 0
        for piece in template.template.root_render_func(context):
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                break
        text = "".join(pieces)
    text = _clean(text)
    return (text, False) if len(text) <= limit else (text[:limit], True)


def _fail(where: str, exc: Exception) -> NoReturn:
    if isinstance(exc, SecurityError):
        raise RenderProblem(where, f"refused by the sandbox: {exc}") from None
    raise RenderProblem(where, f"{type(exc).__name__}: {exc}") from None


def render(
    compiled: CompiledMessage, context: RenderContext, platform: str | None = None, *, require_text: bool = True
) -> RenderedMessage:
    """Render ``compiled`` for one message. ``platform`` defaults to the subscription's.

    Raises :class:`RenderProblem` when a template fails for this context, a data value is over
    its limit, or (unless ``require_text`` is false) a visible push would have neither title nor
    body.
    """
    platform = platform or context.platform
    part = compiled.platforms.get(platform)
    if part is None:
        raise RenderProblem("platforms", f"the message was not compiled for platform {platform!r}")
    jinja_context: Context | None = None
    if part.dynamic:
        # One Jinja context for every field: a name assigned in one template is unknown to the
        # others (refused at compile time), so sharing it cannot change what they render.
        variables = {
            "profile": Record(context.profile),
            "subscription": Record(context.subscription),
            "tables": Record(context.tables),
        }
        jinja_context = SANDBOX.context_class(SANDBOX, variables, "message", {})
    text: dict[str, str | None] = {"title": None, "subtitle": None, "body": None}
    for name, template in part.text:
        limit = TEXT_LIMITS[name]
        try:
            value, cut = _run(template, jinja_context, limit * 2)
        except Exception as exc:  # any template failure affects this message only
            _fail(name, exc)
        value = value.strip()
        if cut or len(value) > limit:
            value = value[: limit - 1].rstrip() + ELLIPSIS
        text[name] = value or None
    if require_text and not part.resolved.silent and not text["title"] and not text["body"]:
        raise RenderProblem("body", "title and body are both empty once rendered for this profile")
    data: list[tuple[str, str]] = []
    for key, template in part.data:
        limit = data_limit(template)
        try:
            value, cut = _run(template, jinja_context, limit)
        except Exception as exc:
            _fail(f"data.{key}", exc)
        if cut or json_len(value) > limit:
            raise RenderProblem(f"data.{key}", f"renders to more than {limit} bytes for this profile")
        data.append((key, value))
    fields = part.fields()
    fields.update(text)
    fields["data"] = tuple(data)
    return RenderedMessage(**fields)


def preview_data(rendered: RenderedMessage) -> dict[str, Any]:
    """A JSON-ready view of a rendered message (for the preview endpoint)."""
    values = dataclasses.asdict(rendered)
    values["data"] = dict(rendered.data)
    values["actions"] = [action.model_dump(exclude_none=True) for action in rendered.actions]
    return {key: value for key, value in values.items() if value not in (None, (), [], {})}
