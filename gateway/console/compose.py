"""The delivery form of the console turned into the domain's input models, and their errors turned
back into messages next to the form's fields.

The form's names (``title``, ``audience_id``, ``action_2_title``...) are the page's; the models are
the API's: :class:`~domain.deliveries.DeliveryCreate`, :class:`~domain.deliveries.DeliveryPreview`
and their :class:`~domain.messages.Message`. Text fields left empty are "not set". Values are
handed to pydantic as typed, so a wrong number or URL gets the API's own message; what a form
writes in its own way (``key=value`` lines of ``Data``, one external id per line of ``Profiles``,
the UTC ``Schedule``) is parsed here. Every problem becomes a :class:`FormErrors` mapping a field
name to its message, so the page can show each one where it belongs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import MultiDict

from core.errors import ClientError
from domain.deliveries import DeliveryCreate, DeliveryPreview
from domain.fields import ID_MAX
from domain.messages import MAX_ACTIONS

Kind = Literal["send", "schedule", "proof"]
TARGETS = {"all": "All subscribers", "audience": "Audience", "profiles": "Profiles", "test_devices": "Test devices"}
#: Message fields that are plain form inputs of the same name.
TEXT_FIELDS = ("title", "subtitle", "body", "image_url", "deeplink", "sound", "badge", "ttl_seconds", "priority")
ACTION_PARTS = ("id", "title", "deeplink")
#: Every form field the message is written in: the live check reports on these only.
MESSAGE_FIELDS = (
    *TEXT_FIELDS,
    "data",
    "actions",
    *(f"action_{n}_{part}" for n in range(1, MAX_ACTIONS + 1) for part in ACTION_PARTS),
)
PROOF_PREFIX = "Proof: "
NAME_MAX = 200
GENERAL = "_form"  # errors that belong to no one field

Form = MultiDict[str, str]
M = TypeVar("M", bound=BaseModel)


class FormErrors(Exception):
    """Problems of a submitted form: field name -> message (the first one of each field)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def positive_id(value: str | None) -> int | None:
    """``value`` as a store id (a positive 32-bit number written in ASCII digits), else None."""
    value = (value or "").strip()
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(ID_MAX)):
        return None
    number = int(value)
    return number if 0 < number <= ID_MAX else None


def _text(form: Form, name: str) -> str | None:
    value = form.get(name, "")
    return value if value.strip() else None


def message_input(form: Form, errors: dict[str, str]) -> dict[str, Any]:
    """The ``message`` object the form describes (what the API would be sent); problems parsing
    ``Data`` go to ``errors``."""
    message: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = _text(form, name)
        if value is not None:
            message[name] = value.strip() if name not in ("title", "subtitle", "body") else value
    actions = []
    for n in range(1, MAX_ACTIONS + 1):
        parts = {part: _text(form, f"action_{n}_{part}") for part in ACTION_PARTS}
        if any(parts.values()):
            actions.append({part: value.strip() for part, value in parts.items() if value is not None})
    if actions:
        message["actions"] = actions
    data = _data(form.get("data", ""), errors)
    if data:
        message["data"] = data
    return message


def _data(text: str, errors: dict[str, str]) -> dict[str, str]:
    data: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            errors.setdefault("data", f"line {number}: write key=value")
            continue
        if key.strip() in data:
            errors.setdefault("data", f"line {number}: the key {key.strip()[:64]!r} is given twice")
            continue
        data[key.strip()] = value.strip()
    return data


def preview_input(form: Form) -> DeliveryPreview:
    """The preview request of the form's message, for the ``preview_profile`` when one is given."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"app_id": form.get("app_id", ""), "message": message_input(form, errors)}
    profile = _text(form, "preview_profile")
    if profile is not None:
        body["profile"] = profile.strip()
    return _validate(DeliveryPreview, body, errors)


def create_input(
    form: Form, kind: Kind, *, test_devices: Iterable[int], now: datetime, idempotency_key: str | None = None
) -> DeliveryCreate:
    """The delivery the form asks for: sent now (``send``), later (``schedule``, at a future
    ``schedule_at``), or a proof to the chosen test devices (``proof``: named "Proof: <name>",
    every platform of the app). ``test_devices`` are the subscription ids the app's test devices
    have: a chosen one that is not among them is refused."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {
        "app_id": form.get("app_id", ""),
        "name": form.get("name", "").strip(),
        "message": message_input(form, errors),
    }
    chosen = _chosen_devices(form, set(test_devices), errors)
    if kind == "proof":
        if body["name"]:
            body["name"] = (PROOF_PREFIX + body["name"])[:NAME_MAX]
        if not chosen and "test_devices" not in errors:
            errors["test_devices"] = "choose at least one test device to send the proof to"
        body["target"] = {"subscriptions": chosen or [0]}  # [0]: the error above is already given
        return _validate(DeliveryCreate, body, errors)
    body["target"] = _target(form, chosen, errors)
    platforms = form.getlist("platforms")
    if not platforms:
        errors["platforms"] = "choose at least one platform"
    else:
        body["platforms"] = platforms
    rate = _text(form, "rate_per_second")
    if rate is not None:
        body["rate_per_second"] = rate.strip()
    schedule = _schedule(form, errors)
    if kind == "send" and schedule is not None:
        errors["schedule_at"] = "Send sends now: clear Schedule, or press Schedule to send at this time"
    elif kind == "schedule":
        if schedule is None and "schedule_at" not in errors:
            errors["schedule_at"] = "give the date and time (UTC) to send at"
        elif schedule is not None and schedule <= now:
            errors["schedule_at"] = "must be in the future"
        body["schedule_at"] = schedule
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    return _validate(DeliveryCreate, body, errors)


def _chosen_devices(form: Form, allowed: set[int], errors: dict[str, str]) -> list[int]:
    chosen: list[int] = []
    for value in form.getlist("test_devices"):
        number = positive_id(value)
        if number is None or number not in allowed:
            errors["test_devices"] = "choose test devices of the chosen app"
            return []
        if number not in chosen:
            chosen.append(number)
    return chosen


def _target(form: Form, chosen: list[int], errors: dict[str, str]) -> dict[str, Any]:
    """The ``target`` object; a placeholder that passes validation when the problem is in ``errors``."""
    kind = form.get("target", "")
    target: dict[str, Any] | None = None
    if kind == "all":
        target = {"all": True}
    elif kind == "audience":
        audience = positive_id(form.get("audience_id"))
        if audience is not None:
            target = {"audience": audience}
        else:
            errors["audience_id"] = "choose an audience"
    elif kind == "profiles":
        ids = list(dict.fromkeys(line.strip() for line in form.get("profiles", "").splitlines() if line.strip()))
        if ids:
            target = {"profiles": ids}
        else:
            errors["profiles"] = "give the external id of at least one profile, one per line"
    elif kind == "test_devices":
        if chosen:
            target = {"subscriptions": chosen}
        else:
            errors.setdefault("test_devices", "choose at least one test device")
    else:
        errors["target"] = "choose who to send to"
    return target or {"all": True}


def _schedule(form: Form, errors: dict[str, str]) -> datetime | None:
    """``schedule_at`` as typed in a datetime-local input, read as UTC."""
    value = form.get("schedule_at", "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value) if len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is None:
        errors["schedule_at"] = "write a date and time such as 2026-12-01T09:00"
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _validate(model: type[M], body: dict[str, Any], errors: dict[str, str]) -> M:
    try:
        result = model.model_validate(body)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            errors.setdefault(field_of(error["loc"]), _sentence(error["msg"]))
        raise FormErrors(errors) from None
    if errors:
        raise FormErrors(errors)
    return result


def field_of(loc: tuple[int | str, ...]) -> str:
    """The form field a pydantic error location is about."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["message"]:
        parts = parts[1:]
        if parts[:1] in (["ios"], ["android"]):
            parts = parts[1:]
        if parts[:1] == ["actions"] and len(parts) >= 3 and parts[1].isdigit():
            return f"action_{int(parts[1]) + 1}_{parts[2]}"
        return parts[0] if parts else "title"
    if parts[:1] == ["target"]:
        named = {"audience": "audience_id", "profiles": "profiles", "subscriptions": "test_devices"}
        return named.get(parts[1], "target") if len(parts) > 1 else "target"
    if parts[:1] == ["profile"]:
        return "preview_profile"
    if parts[:1] == ["idempotency_key"] or not parts:
        return GENERAL
    return parts[0]


_TEMPLATE_FIELD = re.compile(r"^message\.(?:(?:ios|android)\.)?([a-z_]+)[^:]*: (.+)$", re.S)
_BY_CODE = {
    "unknown_app": "app_id",
    "unknown_audience": "audience_id",
    "unknown_platform": "platforms",
    "unknown_profile": "preview_profile",
}


def errors_of(exc: ClientError) -> dict[str, str]:
    """A domain refusal as form errors: a template's problem next to its field, an unknown app,
    audience or profile next to the field that named it, anything else for the whole form."""
    match = _TEMPLATE_FIELD.match(exc.message)
    if match and match.group(1) in MESSAGE_FIELDS:
        return {match.group(1): match.group(2)}
    if exc.code in _BY_CODE:
        return {_BY_CODE[exc.code]: exc.message}
    if "too large" in exc.message or "bytes" in exc.message:
        return {"size": exc.message}
    return {GENERAL: exc.message}


def _sentence(message: str) -> str:
    return message.removeprefix("Value error, ")


def hidden_fields(form: Form) -> list[tuple[str, str]]:
    """The form's values to carry through a confirmation step (not its CSRF token or action)."""
    return [(k, v) for k, v in form.items(multi=True) if k not in ("csrf_token", "action", "idempotency_key", "kind")]
