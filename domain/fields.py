"""Reusable pydantic field types for the domain's input models.

Every string that reaches the store goes through one of these types. Besides length, they refuse
what a JSON body can carry but a database cannot store: NUL characters (PostgreSQL rejects them in
text and JSONB) and lone UTF-16 surrogates such as ``"\\ud800"`` (not encodable as UTF-8). Without
this, such input would pass validation and fail inside the driver as a 500.

Errors are raised as :class:`pydantic_core.PydanticCustomError` so the API's message reads
``invalid field email: not an e-mail address`` rather than ``Value error, ...``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, SecretStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from store.models import PUBLIC_ID_MAX

ID_MAX = 2**31 - 1  # ids are 32-bit integers in the store; a larger one cannot exist

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Both searches in one, for the usual value that holds neither: a registration checks a dozen.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_UNSTORABLE_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def storable(value: str, *, multiline: bool = False) -> str:
    """Refuse NUL, other control characters (tabs and newlines allowed when ``multiline``) and
    lone surrogates. Returns ``value`` unchanged."""
    if not (_UNSTORABLE_MULTILINE if multiline else _UNSTORABLE).search(value):
        return value
    control = _CONTROL_EXCEPT_WHITESPACE if multiline else _CONTROL
    if control.search(value):
        raise PydanticCustomError("control_character", "must not contain control characters")
    if _SURROGATE.search(value):
        raise PydanticCustomError("invalid_unicode", "contains an invalid Unicode character")
    return value


def lookup_key(value: str | None, max_length: int = PUBLIC_ID_MAX) -> str | None:
    """``value`` when it can name a stored row (non-empty, at most ``max_length`` printable
    characters), else None: public endpoints look such keys up before validating anything else,
    and a NUL byte in a query would otherwise fail inside PostgreSQL's driver."""
    if not value or len(value) > max_length or not value.isprintable() or _SURROGATE.search(value):
        return None
    return value


def _single_line(value: str) -> str:
    return storable(value)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


#: Metadata for ``Annotated[str, Field(...), SINGLE_LINE]``: a one-line string the store accepts.
SINGLE_LINE = AfterValidator(_single_line)
NOT_BLANK = AfterValidator(_not_blank)


def secret_check(max_length: int) -> AfterValidator:
    """Metadata for ``Annotated[SecretStr, secret_check(n)]``: multi-line secret text (PEM), never
    shown by ``repr``, marked writeOnly in the schema; blank or over-long values are refused."""

    def check(value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw.strip():
            raise PydanticCustomError("blank", "must not be blank")
        if len(raw) > max_length:
            raise PydanticCustomError("too_long", "must be at most {limit} characters", {"limit": max_length})
        storable(raw, multiline=True)
        return value

    return AfterValidator(check)


Name = Annotated[str, Field(min_length=1, max_length=200), SINGLE_LINE, NOT_BLANK]

#: Characters no public identifier may hold, with why. The SDKs copy identifiers into requests
#: as they are: a ``/`` would split the path segment a Campaign Standard pkey travels in.
_NEVER_ROUTABLE = {"/": "it would split the URL path"}
#: More characters refused in identifiers that the SDKs put into a URL without escaping (the
#: Campaign Standard pkey in the ``mobileAppV5`` path, the Edge config id in ``?configId=``) and
#: that no Adobe product generates: they would end or change that part of the URL.
_NOT_IN_URLS = {
    "?": "it would start the URL's query",
    "#": "it would start the URL's fragment",
    "%": "a URL reads it as the start of an escape",
    "\\": "browsers and HTTP clients read it as /",
}


def _describe(char: str) -> str:
    return repr(char) if char.isprintable() else f"U+{ord(char):04X}"


def _routable(value: str, refused: dict[str, str], *, spaces: bool) -> str:
    """``value`` unchanged, or a PydanticCustomError naming the first character that cannot be routed."""
    for position, char in enumerate(value, 1):
        if not char.isprintable():  # controls, line breaks, invisible and lone surrogate characters
            why = "it is white space other than a plain space" if char.isspace() else "it is not a printable character"
        elif char == " " and not spaces:
            why = "the SDK would put it into a URL unescaped"
        elif char in refused:
            why = refused[char]
        else:
            continue
        raise PydanticCustomError(
            "unroutable_character",
            "character {char} at position {position} cannot be routed: {why}",
            {"char": _describe(char), "position": position, "why": why},
        )
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


def _form_id(value: str) -> str:
    return _routable(value, _NEVER_ROUTABLE, spaces=True)


def _url_id(value: str) -> str:
    return _routable(value, _NEVER_ROUTABLE | _NOT_IN_URLS, spaces=False)


#: An identifier the SDKs send in a form body or JSON (Campaign Classic integration keys: free
#: text an operator types in the mobile application service, often a UUID). Any printable text
#: up to 255 characters, inner spaces included, except ``/``.
FormId = Annotated[str, Field(min_length=1, max_length=PUBLIC_ID_MAX), AfterValidator(_form_id)]
#: An identifier the SDKs put into a URL unescaped: Campaign Standard pkeys (``@`` + URL-safe
#: base64, 120 to 199 characters seen), Edge config ids (UUIDs, or ``{id}:{environment}``), Experience
#: Cloud org ids (``…@AdobeOrg``). Printable, no spaces, none of ``/ ? # % \\``.
UrlId = Annotated[str, Field(min_length=1, max_length=PUBLIC_ID_MAX), AfterValidator(_url_id)]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise PydanticCustomError("email", "not an e-mail address (expected name@domain.tld)")
    return value


Email = Annotated[str, Field(min_length=3, max_length=320), SINGLE_LINE, AfterValidator(_email)]


def check_json(value: Any, *, max_bytes: int, what: str) -> Any:
    """Check a parsed JSON value for storage: every string (keys too) storable, numbers finite,
    the serialised form at most ``max_bytes``. Returns ``value`` unchanged."""

    def walk(node: Any) -> None:
        if isinstance(node, str):
            storable(node, multiline=True)
        elif isinstance(node, float) and not math.isfinite(node):
            raise PydanticCustomError("not_finite", "numbers must be finite (no NaN or Infinity)")
        elif isinstance(node, dict):
            for key, item in node.items():
                walk(key)
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(value)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        raise PydanticCustomError(
            "too_large",
            "{what} is {size} bytes once encoded; at most {limit} are accepted",
            {"what": what, "size": size, "limit": max_bytes},
        )
    return value


ATTRIBUTES_MAX_BYTES = 16 * 1024


def _attributes(value: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = check_json(value, max_bytes=ATTRIBUTES_MAX_BYTES, what="attributes")
    return result


Attributes = Annotated[dict[str, Any], AfterValidator(_attributes)]

PARAMS_MAX = 100


def _scalar_params(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > PARAMS_MAX:
        raise PydanticCustomError("too_many", "at most {limit} params are accepted", {"limit": PARAMS_MAX})
    for name, item in value.items():
        if not 1 <= len(name) <= 255:
            raise PydanticCustomError("bad_name", "param names must be 1 to 255 characters")
        if item is None or not isinstance(item, str | int | float | bool):
            raise PydanticCustomError(
                "not_scalar", "param {name} must be a string, a number or a boolean", {"name": name[:40]}
            )
        if isinstance(item, str) and len(item) > 4096:
            raise PydanticCustomError("too_long", "param {name} is longer than 4096 characters", {"name": name[:40]})
    result: dict[str, Any] = check_json(value, max_bytes=64 * 1024, what="params")
    return result


#: Flat key -> string/number/boolean map (the SDKs' "additional params").
ScalarParams = Annotated[
    dict[str, Any],
    AfterValidator(_scalar_params),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "maxProperties": PARAMS_MAX,
        }
    ),
]
