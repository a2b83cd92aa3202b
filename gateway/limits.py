"""Rate limits: per client address on the public endpoints, per API key on the API (Flask-Limiter).

The public endpoints answer anyone holding what ships inside every app (integration keys, pkeys,
org ids, Edge config ids), so without a limit random tokens and ECIDs would become rows without
bound. Each family counts on its own, per client address: ``registration`` (Campaign Classic and
Standard registrations, Edge interact, native registration), ``tracking`` (``/r/``) and
``identity`` (Campaign Standard's ``/id``), each ``PUSHGATE_RATE_LIMIT_PUBLIC``. Every other API
endpoint counts per API key (a hash of it: keys never reach the counter store),
``PUSHGATE_RATE_LIMIT_API``. The operations endpoints are not limited.

Counts live in memory (one process, the embedded default) or in Redis (``PUSHGATE_REDIS_URL``), so
that every process of a deployment shares them. Over the limit: 429 ``rate_limited`` with
``Retry-After``. The client address is the socket's, or the one trusted proxies report
(:mod:`gateway.proxies`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Flask, Response, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded

from core.config import Settings

#: Public endpoint families and their endpoints.
FAMILIES: dict[str, tuple[str, ...]] = {
    "registration": (
        "classic.register_android",
        "classic.register_ios",
        "classic.register_iphone",
        "standard.mobile_app_subscription",
        "edge.interact",  # token syncs; the tracking events it also carries count here too
        "api.subscriptions.register",
        "api.subscriptions.unregister",
    ),
    "tracking": ("tracking.track",),
    "identity": ("standard.ecid_sync",),
}
PUBLIC = frozenset(endpoint for endpoints in FAMILIES.values() for endpoint in endpoints)
#: API endpoints anyone may read: the API's own documentation.
OPEN = frozenset({"api.docs.openapi_json", "api.docs.reference"})


def client_address() -> str:
    return request.remote_addr or "unknown"


def api_key_or_address() -> str:
    """A hash of the request's bearer key, or its client address when it has none."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and len(header) > 7:
        return "key:" + hashlib.sha256(header[7:].encode()).hexdigest()[:32]
    return "addr:" + client_address()


def install(app: Flask, settings: Settings) -> Limiter:
    """A limiter for ``app`` with the limits above on its registered endpoints."""
    limiter = Limiter(
        client_address,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        strategy="fixed-window",
        headers_enabled=True,
        key_prefix="pushgate",
    )
    # The limited views are wrapped in this app only (the blueprints are shared by every app a
    # process builds, tests build many): the wrapper checks the limit before the view runs.
    views: dict[str, Any] = app.view_functions
    if settings.rate_limit_public:
        for family, endpoints in FAMILIES.items():
            shared = limiter.shared_limit(settings.rate_limit_public, scope=family, key_func=client_address)
            for endpoint in endpoints:
                views[endpoint] = shared(views[endpoint])
    if settings.rate_limit_api:
        per_key = limiter.shared_limit(settings.rate_limit_api, scope="api", key_func=api_key_or_address)
        for endpoint in [e for e in views if e.startswith("api.") and e not in PUBLIC and e not in OPEN]:
            views[endpoint] = per_key(views[endpoint])

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded) -> tuple[Response, int]:
        return jsonify(error="rate_limited", message=f"too many requests: at most {exc.description}"), 429

    return limiter
