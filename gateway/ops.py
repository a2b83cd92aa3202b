"""Operations surface: liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

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
    body, content_type = render()
    return Response(body, content_type=content_type)
