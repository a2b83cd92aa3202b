"""The OpenAPI 3.1 document, built from the routes themselves.

A view declares its contract with :func:`operation`; :func:`build_document` walks the URL map, so
a route cannot exist without appearing in the document (a test checks every ``/api`` route has
an operation, and that the statuses each view returns are the ones it declares). Request and
response bodies are pydantic models, whose JSON Schemas become ``components.schemas``. Every
operation also declares ``4XX`` and ``5XX`` answers with the ``Error`` body.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])
#: A query parameter: (JSON type, description) or (JSON type, description, the values it takes).
QueryParam = tuple[str, str] | tuple[str, str, tuple[str, ...]]

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def operation(
    summary: str,
    *,
    tag: str,
    body: type[BaseModel] | None = None,
    body_media_type: str = "application/json",
    response: type[BaseModel] | None = None,
    response_media_type: str = "",
    status: int | dict[int, str] = 200,
    query: dict[str, QueryParam] | None = None,
    public: bool = False,
    description: str = "",
) -> Callable[[F], F]:
    """Attach an operation description to a view. ``status`` is its success status, or each of them
    with what it means (``{201: "created", 200: "updated"}``), all with the ``response`` body.
    ``query`` maps name -> :data:`QueryParam`."""

    def decorate(view: F) -> F:
        view.openapi = {  # type: ignore[attr-defined]
            "summary": summary,
            "tag": tag,
            "body": body,
            "body_media_type": body_media_type,
            "response": response,
            "response_media_type": response_media_type,
            "statuses": {status: "success"} if isinstance(status, int) else dict(status),
            "query": query or {},
            "public": public,
            "description": description,
        }
        return view

    return decorate


def _path_and_params(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in _CONVERTER.findall(rule):
        kind = "integer" if converter == "int" else "string"
        params.append({"name": name, "in": "path", "required": True, "schema": {"type": kind}})
    return _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", rule), params


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "machine-readable code"},
        "message": {"type": "string", "description": "what is wrong, for people"},
        "details": {"description": "per-field problems, when there are several"},
        "request_id": {
            "type": ["string", "null"],
            "description": "the request's id, as in the X-Request-ID answer header and the gateway's log lines",
        },
    },
}


_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
ERROR_RESPONSES = {
    "4XX": {"description": "the request was refused", "content": _ERROR_CONTENT},
    "5XX": {
        "description": "the gateway failed: 503 database_unavailable, 500 internal_error (logged with the request id)",
        "content": _ERROR_CONTENT,
    },
}


def _query_param(name: str, spec: QueryParam) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": spec[0]}
    if len(spec) == 3:
        schema["enum"] = list(spec[2])
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": spec[1]}


def build_document(app: Flask) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        meta = getattr(view, "openapi", None)
        if meta is None:
            continue
        path, params = _path_and_params(rule.rule)
        role = getattr(view, "required_role", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "summary": meta["summary"],
                "tags": [meta["tag"]],
                "parameters": params + [_query_param(name, spec) for name, spec in meta["query"].items()],
                "responses": {},
            }
            if meta["description"]:
                op["description"] = meta["description"]
            for status, meaning in meta["statuses"].items():
                success: dict[str, Any] = {"description": meaning}
                if meta["response"] is not None:
                    success["content"] = {"application/json": {"schema": ref(meta["response"])}}
                elif meta["response_media_type"]:
                    success["content"] = {meta["response_media_type"]: {"schema": {"type": "string"}}}
                op["responses"][str(status)] = success
            op["responses"].update(ERROR_RESPONSES)
            if meta["body"] is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {meta["body_media_type"]: {"schema": ref(meta["body"])}},
                }
            if role is not None:
                op["security"] = [{"apiKey": []}]
                op["x-required-role"] = role
            elif meta["public"]:
                op["security"] = []
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pushgate",
            "version": "1",
            "description": "Push-notification gateway: Adobe mobile SDK endpoints and the JSON API.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }
