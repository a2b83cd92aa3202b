"""XDM for the local Platform peer: the standard pieces it knows, how a schema composed in its
Schema Registry becomes one JSON Schema, and how a record is checked against it.

What the peer holds, after Adobe's public XDM definitions (github.com/adobe/xdm) in the
"compatibility mode" field names the Platform APIs use:

- the XDM ExperienceEvent class: ``_id`` and ``timestamp`` (ISO 8601 date-time) required,
  ``eventType``, ``eventMergeId``, ``producedBy`` and ``identityMap`` (the class extends the
  identity map);
- the XDM Individual Profile class: ``_id``, ``personID`` and the auditable fields;
- the IdentityMap field group: ``identityMap`` = ``{namespace: [{id, authenticatedState, primary}]}``.

Any other standard reference (``https://ns.adobe.com/xdm/...``, ``https://ns.adobe.com/experience/...``)
is taken as an open field group: its fields are unknown here, so a schema that uses one accepts
other top-level fields, and the reference is recorded. Tenant fields are always checked strictly:
they live under ``_{tenantId}`` and must match the tenant field groups of the schema, with no
extraneous key (as Platform's streaming validation reports "extraneous key [x] is not permitted").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError

EXPERIENCE_EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
PROFILE = "https://ns.adobe.com/xdm/context/profile"
IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
TIME_SERIES = "https://ns.adobe.com/xdm/data/time-series"
RECORD = "https://ns.adobe.com/xdm/data/record"
AUDITABLE = "https://ns.adobe.com/xdm/common/auditable"

#: Where Profile drops what is larger (guardrails: 10 KB per ExperienceEvent, 100 KB per profile record).
PROFILE_EVENT_LIMIT = 10 * 1024
PROFILE_RECORD_LIMIT = 100 * 1024

#: At most this many violations are reported for one record (Platform stops at five).
MAX_VIOLATIONS = 5

DATE_TIME_FORMATS = (
    "yyyy-MM-dd'T'HH:mm:ssZ, yyyy-MM-dd'T'HH:mm:ss.[0-9]{1-9}Z, yyyy-MM-dd'T'HH:mm:ss[+-]HH:mm, "
    "yyyy-MM-dd'T'HH:mm:ss.[0-9]{1,9}[+-]HH:mm"
)

IDENTITY_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "authenticatedState": {"type": "string", "enum": ["ambiguous", "authenticated", "loggedOut"]},
        "primary": {"type": "boolean"},
    },
    "required": ["id"],
    "additionalProperties": False,
}
IDENTITY_MAP_FIELD: dict[str, Any] = {
    "type": "object",
    "meta:xdmType": "map",
    "additionalProperties": {"type": "array", "items": IDENTITY_ITEM},
}


@dataclass(frozen=True)
class StandardClass:
    id: str
    title: str
    behavior: str  # "time-series" or "record"
    extends: tuple[str, ...]
    properties: Mapping[str, Any]
    required: tuple[str, ...]

    def resource(self) -> dict[str, Any]:
        """The class as the global container lists it."""
        return {
            "$id": self.id,
            "meta:altId": alt_id(self.id),
            "meta:resourceType": "classes",
            "version": "1.0",
            "title": self.title,
            "type": "object",
            "meta:extends": list(self.extends),
            "meta:containerId": "global",
            "properties": json.loads(json.dumps(self.properties)),
            "required": list(self.required),
        }


CLASSES: dict[str, StandardClass] = {
    EXPERIENCE_EVENT: StandardClass(
        id=EXPERIENCE_EVENT,
        title="XDM ExperienceEvent",
        behavior="time-series",
        extends=(TIME_SERIES, IDENTITY_MAP),
        properties={
            "_id": {"type": "string", "minLength": 1},
            "timestamp": {"type": "string", "format": "date-time"},
            "eventType": {"type": "string"},
            "eventMergeId": {"type": "string"},
            "producedBy": {"type": "string"},
            "identityMap": IDENTITY_MAP_FIELD,
        },
        required=("_id", "timestamp"),
    ),
    PROFILE: StandardClass(
        id=PROFILE,
        title="XDM Individual Profile",
        behavior="record",
        extends=(RECORD, AUDITABLE),
        properties={
            "_id": {"type": "string", "minLength": 1},
            "personID": {"type": "string"},
            "_repo": {"type": "object"},
            "repositoryCreatedBy": {"type": "string"},
            "repositoryLastModifiedBy": {"type": "string"},
            "createdByBatchID": {"type": "string"},
            "modifiedByBatchID": {"type": "string"},
        },
        required=(),
    ),
}

#: Standard field groups whose fields the peer knows (others are open).
STANDARD_FIELD_GROUPS: dict[str, dict[str, Any]] = {
    IDENTITY_MAP: {
        "$id": IDENTITY_MAP,
        "meta:altId": "_xdm.context.identitymap",
        "meta:resourceType": "mixins",
        "version": "1.0",
        "title": "IdentityMap",
        "type": "object",
        "meta:intendedToExtend": [],
        "meta:containerId": "global",
        "definitions": {"identitymap": {"properties": {"identityMap": IDENTITY_MAP_FIELD}}},
        "allOf": [{"$ref": "#/definitions/identitymap"}],
    }
}


def alt_id(resource_id: str) -> str:
    """``https://ns.adobe.com/xdm/context/profile`` -> ``_xdm.context.profile`` (the registry's dot form)."""
    path = resource_id.split("://", 1)[-1].split("/", 1)[-1]
    return "_" + path.replace("/", ".")


def is_standard(ref: str) -> bool:
    return ref.startswith(("https://ns.adobe.com/xdm/", "https://ns.adobe.com/experience/"))


# -- building one JSON Schema per registry schema ---------------------------------------------------


class CompileError(ValueError):
    """A schema the peer cannot turn into a validator (bad references or field definitions)."""


@dataclass
class CompiledSchema:
    schema_id: str
    class_id: str
    behavior: str
    json_schema: dict[str, Any]
    open_refs: tuple[str, ...]
    tenant_key: str
    validator: Draft7Validator

    @property
    def has_identity_map(self) -> bool:
        return "identityMap" in self.json_schema["properties"]

    def has_path(self, pointer: str) -> bool | None:
        """Whether ``/a/b`` is a field of the schema; None when an open field group may hold it."""
        node: Any = self.json_schema
        parts = [p for p in pointer.split("/") if p]
        for depth, part in enumerate(parts):
            if not isinstance(node, dict):
                return False
            props = node.get("properties")
            if props is None:  # a data type the peer does not hold, or a map: anything may be there
                return None if node.get("type") in (None, "object") else False
            if part not in props:
                open_here = depth == 0 and bool(self.open_refs) and part != self.tenant_key
                return None if open_here or node.get("additionalProperties") not in (None, False) else False
            node = props[part]
        return True


def tenant_properties(field_group: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level properties a tenant field group contributes (from its definitions and allOf)."""
    definitions = field_group.get("definitions") or {}
    names = []
    for item in field_group.get("allOf") or []:
        ref = item.get("$ref", "") if isinstance(item, dict) else ""
        if ref.startswith("#/definitions/"):
            names.append(ref.removeprefix("#/definitions/"))
    if not names:
        names = list(definitions)
    merged: dict[str, Any] = {}
    for name in names:
        definition = definitions.get(name)
        if isinstance(definition, dict):
            merged = merge_properties(merged, definition.get("properties") or {})
    return merge_properties(merged, field_group.get("properties") or {})


def merge_properties(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of two ``properties`` maps: objects defined by both have their fields merged."""
    out = dict(left)
    for key, value in right.items():
        mine = out.get(key)
        if isinstance(mine, dict) and isinstance(value, dict) and "properties" in mine and "properties" in value:
            out[key] = {**mine, **value, "properties": merge_properties(mine["properties"], value["properties"])}
        else:
            out[key] = value
    return out


def namespace_problems(field_group: Mapping[str, Any], tenant_id: str) -> list[str]:
    """Custom fields outside ``_{tenantId}``, or names that start with an underscore below it."""
    problems = []
    props = tenant_properties(field_group)
    for key in props:
        if key != f"_{tenant_id}":
            problems.append(f"/{key}")
    tenant = props.get(f"_{tenant_id}")
    if isinstance(tenant, dict):
        problems.extend(_underscored(tenant, f"/_{tenant_id}"))
    return problems


def _underscored(node: Mapping[str, Any], where: str) -> list[str]:
    found = []
    for key, child in (node.get("properties") or {}).items():
        if key.startswith("_"):
            found.append(f"{where}/{key}")
        if isinstance(child, dict):
            found.extend(_underscored(child, f"{where}/{key}"))
            if isinstance(child.get("items"), dict):
                found.extend(_underscored(child["items"], f"{where}/{key}"))
    return found


def _strict(node: Any) -> Any:
    """An XDM field definition as a JSON Schema with no extraneous keys allowed in objects."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {}  # a data type the peer does not hold: accepted as is
    out = {key: value for key, value in node.items() if key not in ("properties", "items", "isRequired")}
    if "properties" in node:
        props = node["properties"] or {}
        out["properties"] = {key: _strict(value) for key, value in props.items()}
        required = set(node.get("required") or [])
        required |= {key for key, value in props.items() if isinstance(value, dict) and value.get("isRequired") is True}
        if required:
            out["required"] = sorted(required)
        out.setdefault("type", "object")
        out.setdefault("additionalProperties", False)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(node["additionalProperties"])
    if "items" in node:
        out["items"] = _strict(node["items"])
    return out


def compile_schema(  # noqa: PLR0912 -- one branch per kind of reference
    schema: Mapping[str, Any], field_groups: Mapping[str, Mapping[str, Any]], tenant_id: str
) -> CompiledSchema:
    """One validator for a registry schema: its class, its tenant field groups, and open refs."""
    refs = [item.get("$ref") for item in schema.get("allOf") or [] if isinstance(item, dict)]
    if not all(isinstance(ref, str) for ref in refs):
        raise CompileError("every allOf item must be an object with a $ref")
    classes = [ref for ref in refs if ref in CLASSES]
    if len(classes) != 1:
        raise CompileError(
            f"a schema must reference exactly one class; this peer knows {', '.join(sorted(CLASSES))}"
            + (f" (found {', '.join(str(c) for c in classes)})" if classes else "")
        )
    cls = CLASSES[str(classes[0])]
    tenant_key = f"_{tenant_id}"
    properties: dict[str, Any] = json.loads(json.dumps(cls.properties))
    tenant_fields: dict[str, Any] = {}
    open_refs = []
    for ref in refs:
        assert isinstance(ref, str)
        if ref in CLASSES:
            continue
        if ref in STANDARD_FIELD_GROUPS:
            properties = merge_properties(properties, tenant_properties(STANDARD_FIELD_GROUPS[ref]))
        elif ref in field_groups:
            group = field_groups[ref]
            intended = group.get("meta:intendedToExtend") or []
            if intended and cls.id not in intended:
                raise CompileError(f"field group {ref} is not compatible with class {cls.id}")
            contributed = tenant_properties(group).get(tenant_key)
            if isinstance(contributed, dict):
                tenant_fields = merge_properties(tenant_fields, contributed.get("properties") or {})
        elif is_standard(ref):
            open_refs.append(ref)
        else:
            raise CompileError(f"referenced resource {ref} is not found")
    if tenant_fields:
        properties[tenant_key] = _strict({"type": "object", "properties": tenant_fields})
    elif open_refs:
        properties[tenant_key] = False  # open standard groups never hold tenant fields
    json_schema: dict[str, Any] = {
        "type": "object",
        "properties": {key: _strict(value) for key, value in properties.items()},
        "additionalProperties": bool(open_refs),
    }
    if cls.required:
        json_schema["required"] = list(cls.required)
    try:
        Draft7Validator.check_schema(json_schema)
    except Exception as exc:  # jsonschema's SchemaError: a field definition that is no JSON Schema
        raise CompileError(f"invalid field definition: {getattr(exc, 'message', exc)}") from None
    validator = Draft7Validator(json_schema, format_checker=FORMATS)
    return CompiledSchema(
        schema_id=str(schema.get("$id", "")),
        class_id=cls.id,
        behavior=cls.behavior,
        json_schema=json_schema,
        open_refs=tuple(open_refs),
        tenant_key=tenant_key,
        validator=validator,
    )


# -- formats -----------------------------------------------------------------------------------------

FORMATS = FormatChecker(formats=())
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@FORMATS.checks("date-time", raises=ValueError)
def is_date_time(value: object) -> bool:
    """Platform's accepted ISO 8601 date-times (with a zone, optional fraction of 1 to 9 digits)."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    datetime.fromisoformat(value[:19])  # raises on month 00, hour 25, ...
    return True


@FORMATS.checks("date", raises=ValueError)
def is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        return False
    date.fromisoformat(value)
    return True


# -- checking records --------------------------------------------------------------------------------

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
