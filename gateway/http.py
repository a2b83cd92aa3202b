"""Request parsing shared by every surface: JSON bodies, form bodies, pagination, query values.

Each helper turns bad input into a :class:`core.errors.ClientError` (400/413/415) so that no view
ever parses raw input itself, and no malformed request reaches the store.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from core.errors import BadRequest, RequestTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)


def raw_body() -> bytes:
    """The request body, refused with 413 above the surface's limit."""
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise RequestTooLarge(f"request body is larger than {request.max_content_length} bytes") from None


def _media_type() -> str:
    # request.mimetype without parsing the parameters it drops: werkzeug's parse_options_header
    # takes the part before the first ";", stripped of spaces and tabs, as the type.
    return str(request.environ.get("CONTENT_TYPE", "")).partition(";")[0].strip(" \t").lower()


def json_object(*, require_content_type: bool = True) -> dict[str, Any]:
    """Parse the body as one JSON object (UTF-8), or raise a clear 4xx."""
    if require_content_type and _media_type() != "application/json" and not _media_type().endswith("+json"):
        raise UnsupportedMediaType("expected Content-Type: application/json")
    body = raw_body()
    if not body:
        raise BadRequest("request body is empty; expected a JSON object", code="invalid_json")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid UTF-8", code="invalid_encoding") from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and the bare ValueError json raises for integers of more
        # than 4300 digits; RecursionError covers absurd nesting.
        raise BadRequest(f"malformed JSON: {exc}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise BadRequest("expected a JSON object", code="invalid_json")
    return value


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def validate(model: type[M], data: Any) -> M:
    """Validate ``data`` against ``model``; a failure is a 400 listing each field's problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc)
        first = details[0]
        raise BadRequest(
            f"invalid field {first['field']}: {first['problem']}", code="invalid_request", details=details
        ) from None


def json_body(model: type[M]) -> M:
    return validate(model, json_object())


def form_fields() -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` body the way Adobe's SDKs encode it.

    Split on ``&`` and ``=`` first, percent-decode to bytes (``+`` is a space), then decode UTF-8:
    the iOS encoder leaves non-ASCII letters as raw UTF-8 bytes, which a decoder that assumes
    ASCII would mangle. Invalid UTF-8 is refused, never replaced. A repeated field keeps its first
    value.
    """
    if _media_type() not in ("application/x-www-form-urlencoded", ""):
        raise UnsupportedMediaType("expected Content-Type: application/x-www-form-urlencoded")
    fields: dict[str, str] = {}
    for pair in raw_body().split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        try:
            key = _form_decode(name)
            text = _form_decode(value)
        except UnicodeDecodeError:
            raise BadRequest("form body is not valid UTF-8", code="invalid_encoding") from None
        fields.setdefault(key, text)
    return fields


def _form_decode(raw: bytes) -> str:
    # Most names and many values hold neither escape nor "+": unquote_to_bytes, the bulk of a
    # registration's form parsing, would hand them back unchanged.
    if b"%" in raw or b"+" in raw:
        raw = unquote_to_bytes(raw.replace(b"+", b" "))
    return raw.decode("utf-8")


def query_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name} must be an integer", code="invalid_query") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadRequest(f"query parameter {name} must be {bound}", code="invalid_query")
    return value


def query_bool(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"query parameter {name} must be true or false", code="invalid_query")


def query_choice(name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise BadRequest(f"query parameter {name} must be one of {', '.join(choices)}", code="invalid_query")
    return raw
