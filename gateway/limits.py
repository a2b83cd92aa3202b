"""Rate limits: per client address on the public endpoints, per API key on the API.

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

The counting is the ``limits`` library's (fixed windows, its memory and Redis stores), the one
Flask-Limiter is built on. Flask-Limiter's own request hook cost about 0.25 ms of CPU a request
(resolving which of its limit kinds apply, for every endpoint), on registrations whose whole work
is about half a millisecond; one dictionary look-up per request and one counter hit per limited
request do the same job here.
"""

from __future__ import annotations

import hashlib
import math
import time

from flask import Flask, Response, jsonify, request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from core.config import Settings
from gateway.logs import current_request_id

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
FAMILY_OF = {endpoint: family for family, endpoints in FAMILIES.items() for endpoint in endpoints}
#: API endpoints anyone may read: the API's own documentation.
OPEN = frozenset({"api.docs.openapi_json", "api.docs.reference"})


class RateLimited(Exception):
    def __init__(self, limit: RateLimitItem, retry_after: int) -> None:
        super().__init__(str(limit))
        self.limit, self.retry_after = limit, retry_after


def client_address() -> str:
    return request.remote_addr or "unknown"


def api_key_or_address() -> str:
    """A hash of the request's bearer key, or its client address when it has none."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and len(header) > 7:
        return "key:" + hashlib.sha256(header[7:].encode()).hexdigest()[:32]
    return "addr:" + client_address()


class Limits:
    """The limits of one app, checked before each request's view."""

    def __init__(self, settings: Settings) -> None:
        self.public = parse_many(settings.rate_limit_public) if settings.rate_limit_public else []
        self.api = parse_many(settings.rate_limit_api) if settings.rate_limit_api else []
        self.counter = FixedWindowRateLimiter(storage_from_string(settings.redis_url or "memory://"))

    def check(self) -> None:
        endpoint = request.endpoint or ""
        family = FAMILY_OF.get(endpoint)
        if family is not None:
            self._hit(self.public, family, client_address())
        elif endpoint.startswith("api.") and endpoint not in OPEN:
            self._hit(self.api, "api", api_key_or_address())

    def _hit(self, limits: list[RateLimitItem], scope: str, who: str) -> None:
        for limit in limits:
            if not self.counter.hit(limit, "pushgate", scope, who):
                reset = self.counter.get_window_stats(limit, "pushgate", scope, who).reset_time
                raise RateLimited(limit, max(1, math.ceil(reset - time.time())))


def install(app: Flask, settings: Settings) -> Limits | None:
    """Check ``settings``' limits before every request of ``app``; None when both are off."""
    if not settings.rate_limit_public and not settings.rate_limit_api:
        return None
    limits = Limits(settings)
    app.before_request(limits.check)

    @app.errorhandler(RateLimited)
    def rate_limited(exc: RateLimited) -> tuple[Response, int, dict[str, str]]:
        message = f"too many requests: at most {exc.limit}"
        body = jsonify(error="rate_limited", message=message, request_id=current_request_id())
        return body, 429, {"Retry-After": str(exc.retry_after)}

    return limits
