"""``/api/v1/deliveries``: push campaigns (marketer writes, viewer reads)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, url_for
from sqlalchemy.orm import Session

from domain import deliveries
from gateway.api.common import created
from gateway.api.pagination import page_query, paginate
from gateway.api.schemas import BroadLogPage, DeliveryOut, DeliveryPage
from gateway.auth import app_scope, key_label, require_app, requires
from gateway.http import json_body, query_choice, query_int
from gateway.openapi import operation
from gateway.runtime import db
from gateway.worker import delivery_created
from push import payloads
from store.codes import BroadLogStatus
from store.models import BroadLog, Delivery

bp = Blueprint("deliveries", __name__)
log = logging.getLogger("pushgate.api.deliveries")

STATUS_NAMES = {s.name.lower(): s for s in BroadLogStatus}


@bp.post("/deliveries")
@operation(
    "Create a delivery",
    tag="deliveries",
    body=deliveries.DeliveryCreate,
    response=DeliveryOut,
    status={201: "the delivery was created", 200: "an idempotent replay: the delivery this idempotency_key made"},
    description="Sends message to target now, or at schedule_at. Templates are checked and the payload size "
    "bounded now; a problem is a 400. The same idempotency_key with the same request returns the first "
    "delivery (200) instead of creating a second; with a different request it is a 409 idempotency_conflict "
    "naming the fields that differ.",
)
@requires("marketer")
def create_delivery() -> tuple[Response, int]:
    data = json_body(deliveries.DeliveryCreate)
    require_app(data.app_id)
    session = db()
    delivery, was_created = deliveries.create_delivery(session, data, payloads=payloads, created_by=key_label())
    session.commit()
    body = deliveries.describe(session, delivery)
    if not was_created:
        return jsonify(body), 200
    log.info("delivery %s created for app %s", delivery.id, delivery.app_id)
    delivery_created(current_app, delivery.id)  # sent now rather than at the next poll
    return created(body, url_for(".get_delivery", delivery_id=delivery.id))


@bp.post("/deliveries/preview")
@operation(
    "Render a message for a profile, as each platform's push",
    tag="deliveries",
    body=deliveries.DeliveryPreview,
    description="Returns, per platform of the app, the rendered fields, the payload (with placeholder "
    "ids) and its size in bytes. A template error or a payload over 4096 bytes is a 400.",
)
@requires("marketer")
def preview_delivery() -> Response:
    data = json_body(deliveries.DeliveryPreview)
    require_app(data.app_id)
    return jsonify(deliveries.preview(db(), data, payloads=payloads))


@bp.get("/deliveries")
@operation(
    "List deliveries, newest first",
    tag="deliveries",
    response=DeliveryPage,
    query={
        **page_query(newest_first=True),
        "app_id": ("integer", "only this app's"),
        "status": ("string", "scheduled|running|completed|cancelled|failed"),
    },
)
@requires("viewer")
def list_deliveries() -> Response:
    session = db()
    app_id = query_int("app_id", 0, minimum=0)
    stmt = deliveries.list_query(
        app_id=app_id or None, status=query_choice("status", deliveries.STATUSES), apps=app_scope()
    )
    page = paginate(
        session, stmt, Delivery.id, lambda rows: [deliveries.describe(session, d) for d in rows], newest_first=True
    )
    return jsonify(page)


@bp.get("/deliveries/<int:delivery_id>")
@operation("Get a delivery with its counts", tag="deliveries", response=DeliveryOut)
@requires("viewer")
def get_delivery(delivery_id: int) -> Response:
    session = db()
    return jsonify(deliveries.describe(session, _delivery(session, delivery_id)))


@bp.post("/deliveries/<int:delivery_id>/cancel")
@operation("Cancel a scheduled or running delivery", tag="deliveries", response=DeliveryOut)
@requires("marketer")
def cancel_delivery(delivery_id: int) -> Response:
    session = db()
    delivery = deliveries.cancel(session, _delivery(session, delivery_id), cancelled_by=key_label())
    session.commit()
    log.info("delivery %s cancelled", delivery_id)
    return jsonify(deliveries.describe(session, delivery))


@bp.get("/deliveries/<int:delivery_id>/broadlogs")
@operation(
    "The delivery's messages (broadLog)",
    tag="deliveries",
    response=BroadLogPage,
    query={**page_query(("id",)), "status": ("string", "pending|sent|failed|ignored|cancelled")},
)
@requires("viewer")
def list_broadlogs(delivery_id: int) -> Response:
    session = db()
    _delivery(session, delivery_id)
    status = query_choice("status", tuple(STATUS_NAMES))
    stmt = deliveries.broadlogs_query(delivery_id, int(STATUS_NAMES[status]) if status else None)
    page = paginate(
        session, stmt, BroadLog.id, lambda rows: [deliveries.describe_broadlog(r) for r in rows], sorts=("id",)
    )
    return jsonify(page)


def _delivery(session: Session, delivery_id: int) -> Delivery:
    """The delivery, 404 as for an unknown one when the request's key does not reach its app."""
    delivery = deliveries.get_delivery(session, delivery_id)
    require_app(delivery.app_id, f"no delivery with id {delivery_id}")
    return delivery
