"""The Adobe mobile SDK surfaces: byte-compatible endpoints that SDKs call unchanged.

They are public (SDKs carry no API key) but each is gated by something only a configured app
knows: an integration key, a Campaign Standard pkey, an Edge config id or an Experience Cloud org.
Bodies are capped at ``PUSHGATE_MAX_PUBLIC_BODY_BYTES``.
"""

from __future__ import annotations

from flask import Blueprint, request

from gateway.runtime import runtime


def public_blueprint(name: str) -> Blueprint:
    """A blueprint whose requests are capped at the public body limit."""
    bp = Blueprint(name, __name__)

    @bp.before_request
    def _cap_body() -> None:
        request.max_content_length = runtime().settings.max_public_body_bytes

    return bp
