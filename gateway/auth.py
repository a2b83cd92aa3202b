"""Bearer API keys on the JSON API: 401 for a missing or unknown key, 403 for a role too low."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from core.errors import Forbidden, Unauthorized
from domain.keys import Role, authenticate, role_allows
from gateway.runtime import db

F = TypeVar("F", bound=Callable[..., Any])


def current_role() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    key = authenticate(db(), presented.strip())
    if key is None:
        raise Unauthorized("unknown or revoked API key")
    g.api_key_id = key.id
    return key.role


def requires(role: Role) -> Callable[[F], F]:
    """Allow the view to keys whose role is ``role`` or higher; recorded for the OpenAPI document."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            held = current_role()
            if not role_allows(held, role):
                raise Forbidden(f"this needs the {role} role; the key's role is {held}")
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
