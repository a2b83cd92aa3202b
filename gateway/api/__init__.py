"""The JSON API v1 (``/api/v1``): one child blueprint per resource, bodies capped by
``PUSHGATE_MAX_API_BODY_BYTES``, the native registration endpoints capped by the public limit."""

from __future__ import annotations

from flask import Blueprint

from gateway.api import (
    apps,
    audiences,
    deliveries,
    docs,
    keys,
    profiles,
    quarantine,
    sdk_config,
    subscriptions,
    sync,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
for child in (
    apps.bp,
    sdk_config.bp,
    profiles.bp,
    subscriptions.bp,
    deliveries.bp,
    audiences.bp,
    quarantine.bp,
    sync.bp,
    keys.bp,
    docs.bp,
):
    bp.register_blueprint(child)
