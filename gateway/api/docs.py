"""``/api/v1/openapi.json`` and ``/api/v1/docs``: the API's contract, machine- and human-readable.

Both are built from the same :func:`gateway.openapi.build_document`, so the reference page cannot
say something the document does not. The page is rendered on the server from a Jinja template with
inline styles and no script or CDN, so it works offline and behind strict CSPs.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template

from gateway.openapi import build_document, operation

bp = Blueprint("docs", __name__)

Part = tuple[str, str | None]  # (text, schema name to link to, if any)
METHOD_ORDER = {"get": 0, "post": 1, "put": 2, "patch": 3, "delete": 4}
CONSTRAINTS = {
    "minLength": "min length {}",
    "maxLength": "max length {}",
    "pattern": "pattern {}",
    "minimum": "≥ {}",
    "maximum": "≤ {}",
    "maxProperties": "at most {} entries",
}


@bp.get("/openapi.json")
@operation("The OpenAPI 3.1 document of this API", tag="docs", public=True)
def openapi_json() -> Response:
    return jsonify(build_document(current_app))


@bp.get("/docs")
@operation(
    "The API reference page (HTML)",
    tag="docs",
    public=True,
    description="Rendered from the same document as /api/v1/openapi.json.",
)
def reference() -> str:
    return render_template("api_docs.html", **reference_context(build_document(current_app)))


def reference_context(document: dict[str, Any]) -> dict[str, Any]:
    """Turn the OpenAPI document into what the template shows: operations grouped by tag, then
    every schema as a table of its fields."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            groups.setdefault(op["tags"][0], []).append(_operation(path, method, op))
    for ops in groups.values():
        ops.sort(key=lambda o: (o["path"], METHOD_ORDER.get(o["method"], 9)))
    schemas = document["components"]["schemas"]
    return {
        "info": document["info"],
        "groups": sorted(groups.items()),
        "schemas": [_schema(name, schemas[name]) for name in sorted(schemas)],
    }


def _operation(path: str, method: str, op: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = op.get("requestBody", {}).get("content", {})
    media_type, body_spec = next(iter(content.items())) if content else (None, {})
    success = [(status, spec) for status, spec in op["responses"].items() if status.startswith("2")]
    spec = success[0][1] if success else {}  # every success status of an operation has the same body
    response_schema = spec.get("content", {}).get("application/json", {}).get("schema")
    return {
        "anchor": op["operationId"].replace(".", "-"),
        "method": method,
        "path": path,
        "summary": op["summary"],
        "description": op.get("description", ""),
        "role": op.get("x-required-role") or ("public" if op.get("security") == [] else "none"),
        "parameters": [
            {
                "name": p["name"],
                "in": p["in"],
                "type": _parts(p["schema"]),
                "required": p.get("required", False),
                "description": p.get("description", ""),
            }
            for p in op.get("parameters", [])
        ],
        "request": None if media_type is None else {"media_type": media_type, "type": _parts(body_spec["schema"])},
        "status": ", ".join(
            f"{status} ({spec['description']})" if len(success) > 1 else status for status, spec in success
        ),
        "response": None if response_schema is None else _parts(response_schema),
    }


def _schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    required = set(schema.get("required", []))
    rows = [
        {
            "name": field,
            "type": _parts(spec),
            "required": field in required,
            "description": spec.get("description", ""),
            "constraints": _constraints(spec),
        }
        for field, spec in schema.get("properties", {}).items()
    ]
    return {
        "name": name,
        "description": schema.get("description", ""),
        "rows": rows,
        "type": None if rows else _parts(schema),
        "closed": schema.get("additionalProperties") is False,
    }


def _parts(schema: dict[str, Any]) -> list[Part]:  # noqa: PLR0911 -- one return per schema shape
    """A schema as a short type expression; referenced schemas become links."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [(name, name)]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts: list[Part] = []
            for index, option in enumerate(schema[key]):
                if index:
                    parts.append((" | ", None))
                parts.extend(_parts(option))
            return parts
    if "enum" in schema:
        return [(" | ".join(json.dumps(v) for v in schema["enum"]), None)]
    if "const" in schema:
        return [(json.dumps(schema["const"]), None)]
    kind = schema.get("type")
    if kind == "array":
        return [("array of ", None), *_parts(schema.get("items", {}))]
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return [("object of ", None), *_parts(schema["additionalProperties"])]
    if isinstance(kind, list):
        return [(" | ".join(kind), None)]
    if kind:
        fmt = schema.get("format")
        return [(f"{kind} ({'secret' if fmt == 'password' else fmt})" if fmt else kind, None)]
    return [("any JSON", None)]


def _constraints(spec: dict[str, Any]) -> str:
    found = [text.format(spec[key]) for key, text in CONSTRAINTS.items() if key in spec]
    for option in spec.get("anyOf", []):
        found += [text.format(option[key]) for key, text in CONSTRAINTS.items() if key in option]
    if spec.get("default") not in (None, {}, []):
        found.append(f"default {json.dumps(spec['default'])}")
    return "; ".join(found)
