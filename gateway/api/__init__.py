"""The JSON API v1 (``/api/v1``): one child blueprint per resource, bodies capped by
``PUSHGATE_MAX_API_BODY_BYTES``, the native registration endpoints capped by the public limit."""

from __future__ import annotations

from flask import Blueprint

from gateway.api import apps, deliveries, docs, keys, profiles, quarantine, subscriptions

bp = Blueprint("api", __name__, url_prefix="/api/v1")
for child in (apps.bp, profiles.bp, subscriptions.bp, deliveries.bp, quarantine.bp, keys.bp, docs.bp):
    bp.register_blueprint(child)
