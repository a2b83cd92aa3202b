"""How the local Platform peer checks a record against a compiled schema: the violations in the
words of Platform's validation (at most five), and why Real-Time Customer Profile would drop it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema.exceptions import ValidationError

from sync.peers.platform_xdm.schemas import DATE_TIME_FORMATS, CompiledSchema

#: Where Profile drops what is larger (guardrails: 10 KB per ExperienceEvent, 100 KB per profile record).
PROFILE_EVENT_LIMIT = 10 * 1024
PROFILE_RECORD_LIMIT = 100 * 1024

#: At most this many violations are reported for one record (Platform stops at five).
MAX_VIOLATIONS = 5

_JSON_TYPES = {
    "string": "String",
    "integer": "Integer",
    "number": "Number",
    "boolean": "Boolean",
    "object": "JSONObject",
    "array": "JSONArray",
    "null": "Null",
}


def _found(value: object) -> str:  # noqa: PLR0911 -- one return per JSON type
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Long"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "JSONArray"
    return "JSONObject"


def _pointer(parts: Iterable[object]) -> str:
    return "#" + "".join(f"/{part}" for part in parts)


def _violation(error: ValidationError, *, message: str, keyword: str | None = None, path: Any = None) -> dict[str, Any]:
    return {
        "schemaLocation": _pointer(list(error.absolute_schema_path)[:-1]),
        "pointerToViolation": _pointer(error.absolute_path if path is None else path),
        "causingExceptions": [],
        "keyword": keyword or str(error.validator),
        "message": message,
    }


def _describe(error: ValidationError) -> list[dict[str, Any]]:  # noqa: PLR0911 -- one return per keyword
    """Platform-style violations (everit's wording, which Platform's validation reports)."""
    keyword = str(error.validator)
    instance = error.instance
    value: Any = error.validator_value
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = set((error.schema.get("properties") or {}) if isinstance(error.schema, dict) else ())
        return [
            _violation(error, message=f"extraneous key [{key}] is not permitted")
            for key in instance
            if key not in known
        ]
    if keyword == "required" and isinstance(instance, dict):
        return [_violation(error, message=f"required key [{key}] not found") for key in value if key not in instance]
    if keyword == "type":
        names = [value] if isinstance(value, str) else list(value)
        wanted = " or ".join(_JSON_TYPES.get(name, name) for name in names)
        return [_violation(error, message=f"expected type: {wanted}, found: {_found(instance)}")]
    if keyword == "format" and error.validator_value == "date-time":
        return [_violation(error, message=f"[{instance}] is not a valid date-time. Expected [{DATE_TIME_FORMATS}]")]
    if keyword == "format":
        return [_violation(error, message=f"[{instance}] is not a valid {error.validator_value}")]
    if keyword == "enum":
        return [_violation(error, message=f"{instance} is not a valid enum value")]
    if keyword == "False schema":
        name = error.absolute_path[-1] if error.absolute_path else ""
        return [_violation(error, keyword="additionalProperties", message=f"extraneous key [{name}] is not permitted")]
    return [_violation(error, message=error.message)]


def identity_items(record: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    identity_map = record.get("identityMap")
    if not isinstance(identity_map, dict):
        return []
    return [
        (namespace, item)
        for namespace, items in identity_map.items()
        if isinstance(items, list)
        for item in items
        if isinstance(item, dict)
    ]


def violations(compiled: CompiledSchema, record: object) -> list[dict[str, Any]]:
    """What is wrong with ``record`` for this schema (empty when valid), at most five items."""
    found: list[dict[str, Any]] = []
    for error in sorted(compiled.validator.iter_errors(record), key=lambda e: [str(p) for p in e.absolute_path]):
        found.extend(_describe(error))
        if len(found) >= MAX_VIOLATIONS:
            break
    if isinstance(record, dict) and not found:
        primaries = [item for _ns, item in identity_items(record) if item.get("primary") is True]
        if len(primaries) > 1:
            found.append(
                {
                    "schemaLocation": "#/properties/identityMap",
                    "pointerToViolation": "#/identityMap",
                    "causingExceptions": [],
                    "keyword": "primary",
                    "message": f"identityMap holds {len(primaries)} primary identities; at most one is allowed",
                }
            )
    return found[:MAX_VIOLATIONS]


def value_at(record: Mapping[str, Any], pointer: str) -> object:
    node: object = record
    for part in (p for p in pointer.split("/") if p):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def profile_problem(compiled: CompiledSchema, record: Mapping[str, Any], primary_path: str | None) -> str | None:
    """Why Real-Time Customer Profile would drop this record, or None when it would take it."""
    size = len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode())
    limit = PROFILE_EVENT_LIMIT if compiled.behavior == "time-series" else PROFILE_RECORD_LIMIT
    if size > limit:
        kind = "ExperienceEvent" if compiled.behavior == "time-series" else "profile record"
        return f"the {kind} is {size} bytes; Profile drops any {kind} over {limit // 1024}KB"
    has_primary = any(item.get("primary") is True for _ns, item in identity_items(record))
    if not has_primary and primary_path is not None:
        value = value_at(record, primary_path)
        has_primary = value not in (None, "", [], {})
    if not has_primary:
        return (
            "the record has no primary identity (an identityMap item with primary: true, or a value in the field "
            "of the schema's primary identity descriptor)"
        )
    return None
