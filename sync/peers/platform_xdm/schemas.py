"""How a schema composed in the local Platform peer's Schema Registry becomes one JSON Schema
validator: its class, the standard and tenant field groups it references, and open references.

Any other standard reference (``https://ns.adobe.com/xdm/...``, ``https://ns.adobe.com/experience/...``)
is taken as an open field group: its fields are unknown here, so a schema that uses one accepts
other top-level fields, and the reference is recorded. Tenant fields are always checked strictly:
they live under ``_{tenantId}`` and must match the tenant field groups of the schema, with no
extraneous key (as Platform's streaming validation reports "extraneous key [x] is not permitted").
Date-times and dates are checked in the forms Platform accepts (:data:`FORMATS`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

from sync.peers.platform_xdm.standard import CLASSES, STANDARD_FIELD_GROUPS, is_standard


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
#: The date-time forms of :data:`FORMATS`, as Platform's validation lists them.
DATE_TIME_FORMATS = (
    "yyyy-MM-dd'T'HH:mm:ssZ, yyyy-MM-dd'T'HH:mm:ss.[0-9]{1-9}Z, yyyy-MM-dd'T'HH:mm:ss[+-]HH:mm, "
    "yyyy-MM-dd'T'HH:mm:ss.[0-9]{1,9}[+-]HH:mm"
)
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
