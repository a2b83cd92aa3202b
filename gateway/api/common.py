"""Small helpers shared by the API views: the JSON body, ids from the path, 201 Location headers."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from core.errors import BadRequest


def created(payload: dict[str, Any], location: str | None = None) -> tuple[Response, int]:
    """A 201 response with an optional Location header."""
    response = jsonify(payload)
    if location is not None:
        response.headers["Location"] = location
    return response, 201


def no_content() -> tuple[str, int]:
    return "", 204


def query_text(name: str, max_length: int) -> str | None:
    """An optional free-text query parameter (an exact-match filter); None when absent or empty."""
    value = request.args.get(name)
    if not value:
        return None
    if len(value) > max_length or not value.isprintable():
        raise BadRequest(
            f"query parameter {name} must be at most {max_length} printable characters", code="invalid_query"
        )
    return value
