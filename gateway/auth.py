"""Bearer API keys on the JSON API: 401 for a missing or unknown key, 403 for a role too low, and
404 for an app outside the apps a key is limited to (see :mod:`domain.keys`): to such a key, the
other apps and everything in them do not exist."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from core.errors import Forbidden, NotFound, Unauthorized
from domain.keys import Role, Scope, authenticate, role_allows, scope_of
from gateway.runtime import db

F = TypeVar("F", bound=Callable[..., Any])


def current_scope() -> Scope:
    """The request's key: its role and the apps it is limited to. 401 without a live key."""
    cached: Scope | None = g.get("api_scope")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    key = authenticate(db(), presented.strip())
    if key is None:
        raise Unauthorized("unknown or revoked API key")
    scope = scope_of(key)
    g.api_key_id, g.api_key_name, g.api_scope = key.id, key.name, scope
    return scope


def key_label() -> str:
    """How the request's key is recorded on what it creates or cancels: "API key <name>"."""
    current_scope()
    return f"API key {g.api_key_name}"


def current_role() -> str:
    return current_scope().role


def requires(role: Role, *, every_app: bool = False) -> Callable[[F], F]:
    """Allow the view to keys whose role is ``role`` or higher (and, with ``every_app``, only to
    keys limited to no app: the view reaches beyond any one app); recorded for the OpenAPI document."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = current_scope()
            if not role_allows(scope.role, role):
                raise Forbidden(f"this needs the {role} role; the key's role is {scope.role}")
            if every_app and scope.apps is not None:
                raise Forbidden("this needs a key that is not limited to some apps")
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def app_scope() -> frozenset[int] | None:
    """The apps the request's key is limited to; None: every app."""
    return current_scope().apps


def require_app(app_id: int, missing: str | None = None) -> None:
    """404 when the request's key does not reach ``app_id``, saying what an unknown id says:
    ``missing`` (for a row of that app: "no delivery with id 7"), else that no app has the id."""
    if not current_scope().reaches(app_id):
        raise NotFound(missing or f"no app with id {app_id}")
