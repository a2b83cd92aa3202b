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

The counting is the ``limits`` library's fixed windows (the library Flask-Limiter is built on),
with its Redis store. Flask-Limiter's own request hook cost about 0.25 ms of CPU a request
(resolving which of its limit kinds apply, for every endpoint), on registrations whose whole work
is about half a millisecond; one dictionary look-up per request and one counter hit per limited
request do the same job here. In memory the windows are :class:`MemoryWindows`' rather than the
library's ``MemoryStorage``, which starts a new expiry thread (``threading.Timer``) every 10 ms
while hits keep coming: under load that was a thread start and a sweep of every key about a
hundred times a second in each process, for counts that one lock and a dictionary keep as well.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import Protocol

from flask import Flask, Response, jsonify, request
from limits import RateLimitItem, WindowStats, parse_many
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


class WindowCounter(Protocol):
    """What :class:`Limits` asks of a counter: ``limits``' ``FixedWindowRateLimiter`` or :class:`MemoryWindows`."""

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool: ...

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats: ...


class MemoryWindows:
    """Fixed windows in this process's memory, counted as ``limits``' ``FixedWindowRateLimiter``
    counts them over its ``MemoryStorage``: a window opens with the first hit of its key and lasts
    the limit's period; every hit counts, refused ones too; a hit is allowed while the window's
    count is at most the limit's amount. Expired windows are dropped on the first hit of a later
    second, in the thread that makes it, so memory stays bounded by the keys of the last period."""

    #: How often, at most, expired windows are swept out (seconds).
    SWEEP_SECONDS = 1.0

    def __init__(self) -> None:
        self._windows: dict[tuple[RateLimitItem, tuple[str, ...]], tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._sweep_at = 0.0

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        key = (item, identifiers)
        now = time.time()
        with self._lock:
            if now >= self._sweep_at:
                self._sweep(now)
            window = self._windows.get(key)
            if window is None or window[0] <= now:
                window = (now + item.get_expiry(), cost)
            else:
                window = (window[0], window[1] + cost)
            self._windows[key] = window
        return window[1] <= item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        now = time.time()
        window = self._windows.get((item, identifiers))
        if window is None or window[0] <= now:
            return WindowStats(now, item.amount)
        return WindowStats(window[0], max(0, item.amount - window[1]))

    def _sweep(self, now: float) -> None:
        self._windows = {key: window for key, window in self._windows.items() if window[0] > now}
        self._sweep_at = now + self.SWEEP_SECONDS


def window_counter(storage_url: str) -> WindowCounter:
    """Fixed-window counts in Redis (``redis://...``, shared by every process) or, for an empty
    url, in this process's memory."""
    if storage_url:
        return FixedWindowRateLimiter(storage_from_string(storage_url))
    return MemoryWindows()


class Limits:
    """The limits of one app, checked before each request's view."""

    def __init__(self, settings: Settings) -> None:
        self.public = parse_many(settings.rate_limit_public) if settings.rate_limit_public else []
        self.api = parse_many(settings.rate_limit_api) if settings.rate_limit_api else []
        self.counter = window_counter(settings.redis_url)

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
