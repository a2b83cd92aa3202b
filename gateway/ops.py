"""Operations surface: liveness, readiness and Prometheus metrics.

``/healthz`` and ``/readyz`` answer anyone (load balancers and orchestrators call them). ``/metrics``
names apps and counts their traffic, so it can be closed with ``PUSHGATE_METRICS_TOKEN``.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.errors import Unauthorized
from core.metrics import render
from gateway.runtime import runtime
from store.db import is_migrated

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """The database answers and carries the current schema."""
    engine = runtime().engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        migrated = is_migrated(engine)
    except SQLAlchemyError as exc:
        return jsonify(status="unavailable", database=f"unreachable: {type(exc).__name__}"), 503
    if not migrated:
        return jsonify(status="unavailable", database="not migrated: run flask --app wsgi db upgrade"), 503
    return jsonify(status="ok", database="ok"), 200


@bp.get("/metrics")
def metrics() -> Response:
    expected = runtime().settings.metrics_token
    if expected:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            raise Unauthorized("GET /metrics needs Authorization: Bearer <PUSHGATE_METRICS_TOKEN>")
    body, content_type = render()
    return Response(body, content_type=content_type)
