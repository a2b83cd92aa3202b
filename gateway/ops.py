"""Operations surface: liveness, readiness and Prometheus metrics.

``/healthz`` and ``/readyz`` answer anyone (load balancers and orchestrators call them). ``/metrics``
names apps and counts their traffic, so it can be closed with ``PUSHGATE_METRICS_TOKEN``.

``/readyz`` is 503 ``unavailable`` when the database is unreachable or not migrated: this process
can serve nothing. It is 200 ``degraded`` when running deliveries are stalled (a platform's
messages refused for the app's credentials, :mod:`domain.delivery_status`): every process shares
that database, so a 503 would make a load balancer take every one of them out of rotation, and
with them the registrations, tracking and API that still work. The stalls are listed by delivery
id, platform and reason in pushgate's words (no app name, no provider text), as the
delivery's ``error`` says them to API clients.

In Celery mode (``PUSHGATE_BROKER_URL``) it also says whether the broker accepts a connection
within two seconds (``broker``: ``ok`` or ``unreachable: <error>``, never the URL). A broker that
is down makes it 200 ``degraded`` too: this process still serves registrations, tracking and the
API, and the deliveries created meanwhile are started once the broker is back. ``/metrics`` then
reads the broker's push and sync queue depths as it is scraped (``pushgate_broker_queue_depth``,
NaN when the broker does not answer within a second; the scrape never fails for it).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.errors import Unauthorized
from core.metrics import render
from domain import delivery_status
from gateway.runtime import runtime
from store.db import is_migrated
from store.types import iso

bp = Blueprint("ops", __name__)
#: How many stalls /readyz lists (the oldest); its count covers them all.
LISTED_STALLS = 20


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """The database answers and carries the current schema; running deliveries make progress."""
    rt = runtime()
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        migrated = is_migrated(rt.engine)
        if migrated:
            with rt.sessions() as session:
                count = delivery_status.stalled_count(session)
                listed = delivery_status.stalls(session, LISTED_STALLS) if count else []
    except SQLAlchemyError as exc:
        return jsonify(status="unavailable", database=f"unreachable: {type(exc).__name__}"), 503
    if not migrated:
        return jsonify(status="unavailable", database="not migrated: run flask --app wsgi db upgrade"), 503
    broker: dict[str, str] = {}
    if rt.settings.broker_url:
        from gateway.broker import ping  # celery only in Celery mode

        broker["broker"] = ping(rt.settings)
    if not count:
        status = "ok" if broker.get("broker", "ok") == "ok" else "degraded"
        return jsonify(status=status, database="ok", **broker, deliveries="ok", stalled=[]), 200
    stalled = [
        {"delivery_id": s.delivery_id, "platform": s.platform, "reason": s.reason, "since": iso(s.since)}
        for s in listed
    ]
    deliveries = (
        f"{count} running {'delivery' if count == 1 else 'deliveries'} cannot send to a platform; "
        "their error says why (GET /api/v1/deliveries/{id})"
    )
    return jsonify(status="degraded", database="ok", **broker, deliveries=deliveries, stalled=stalled), 200


@bp.get("/metrics")
def metrics() -> Response:
    expected = runtime().settings.metrics_token
    if expected:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            raise Unauthorized("GET /metrics needs Authorization: Bearer <PUSHGATE_METRICS_TOKEN>")
    if runtime().settings.broker_url:
        from gateway.broker import refresh_queue_depths  # celery only in Celery mode

        refresh_queue_depths(runtime().settings)
    body, content_type = render()
    return Response(body, content_type=content_type)
