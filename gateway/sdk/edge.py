"""Experience Platform Messaging over the Edge Network (docs/protocols.md §3): ``/ee[/{hint}]/v1/interact``.

One request carries several events. Token syncs (``data.pushNotificationDetails``) become
subscriptions of the app whose bundle id or package name equals ``appID``; ``pushTracking.*``
events become trackingLog rows when they name a sent message, either through the
``messageExecution`` ids we put in the push's ``_xdm`` or through the provider's message id.
Other events are accepted and ignored. The answer is a 200 whose records are written as
``\\u0000`` + JSON + ``\\n``: Android drops the first character of each line before parsing.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from core.errors import BadRequest, NotFound
from core.metrics import REGISTRATIONS, TRACKING_EVENTS
from domain import apps
from domain.fields import lookup_key
from domain.subscriptions import Registration, register
from domain.tracking import (
    EDGE_EVENTS,
    TrackingCall,
    message_by_provider_id,
    parse_delivery_id,
    parse_message_id,
    record,
)
from gateway.http import json_object
from gateway.openapi import operation
from gateway.runtime import db, runtime
from gateway.sdk import public_blueprint
from store.models import App

bp = public_blueprint("edge")

SDK = "edge"
PROVIDER_PLATFORM = {"fcm": "android", "apns": "ios", "apnsSandbox": "ios"}
MAX_EVENTS = 100


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _ecid(body: dict[str, Any]) -> str | None:
    entries = _dig(body, "xdm", "identityMap", "ECID")
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        ecid = entries[0].get("id")
        return lookup_key(ecid, 64) if isinstance(ecid, str) else None
    return None


def _token_syncs(session: Any, app: App, details: list[Any], ecid: str | None) -> int:
    # Keyed by platform too: an iOS bundle id often equals the Android package name.
    parts = {(p.app_identifier, p.platform): p for p in app.platforms}
    count = 0
    for item in details:
        if not isinstance(item, dict):
            raise BadRequest("pushNotificationDetails items must be objects", code="invalid_event")
        provider, token, app_id = item.get("platform"), item.get("token"), item.get("appID")
        if provider not in PROVIDER_PLATFORM or not isinstance(token, str) or not isinstance(app_id, str):
            raise BadRequest(
                "pushNotificationDetails needs appID, token and platform fcm|apns|apnsSandbox",
                code="invalid_event",
            )
        part = parts.get((app_id, PROVIDER_PLATFORM[provider]))
        if part is None:
            raise NotFound(
                f"appID {app_id[:100]!r} is not a {PROVIDER_PLATFORM[provider]} app of this datastream",
                code="unknown_app_id",
            )
        item_ecid = _dig(item, "identity", "id")
        _id, created = register(
            session,
            Registration(
                app_id=app.id,
                platform=part.platform,
                token=token,
                sdk=SDK,
                push_provider=provider,
                ecid=item_ecid if isinstance(item_ecid, str) and item_ecid else ecid,
                disabled=bool(item.get("denylisted")),
            ),
            reconciliation_field=runtime().settings.reconciliation_field,
        )
        REGISTRATIONS.labels(SDK, part.platform, "created" if created else "updated").inc()
        count += 1
    return count


def _tracking_call(session: Any, app: App, xdm: dict[str, Any], ecid: str | None) -> TrackingCall | None:
    """The tracking call an Edge event makes, for a message of ``app`` only (the datastream's app:
    a message of another app, or an unknown one, records nothing)."""
    event_type = xdm.get("eventType")
    interaction = EDGE_EVENTS.get(event_type) if isinstance(event_type, str) else None
    if interaction is None or event_type is None:
        return None
    execution = _dig(xdm, "_experience", "customerJourneyManagement", "messageExecution") or {}
    action_id = _dig(xdm, "pushNotificationTracking", "customAction", "actionID")
    message_id = execution.get("messageExecutionID") if isinstance(execution, dict) else None
    message = parse_message_id(message_id) if isinstance(message_id, str) else None
    raw_delivery = execution.get("messageID") if isinstance(execution, dict) else None
    delivery = parse_delivery_id(raw_delivery) if isinstance(raw_delivery, str) else None
    if message is not None and delivery is not None:
        broadlog_id, mac = message
        delivery_id: int | None = delivery[0]
        via_provider = False
    else:  # Android's receive carries no _xdm: the provider's message id names the message
        provider_id = _dig(xdm, "pushNotificationTracking", "pushProviderMessageID")
        found = message_by_provider_id(session, provider_id) if isinstance(provider_id, str) else None
        if found is None:
            return None
        broadlog_id, mac, delivery_id, via_provider = found, None, None, True
    return TrackingCall(
        broadlog_id,
        delivery_id,
        interaction,
        SDK,
        event_type,
        action_id=action_id if isinstance(action_id, str) else None,
        ecid=ecid,
        app_id=app.id,
        signature=mac,
        via_provider_id=via_provider,
    )


def _records(records: list[dict[str, Any]]) -> Response:
    body = "".join("\u0000" + json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    return Response(body, status=200, content_type="application/json")


@operation(
    "Edge Network interact: push token sync and push tracking (AEP Messaging SDK)",
    tag="Edge Network SDK",
    public=True,
    query={
        "configId": ("string", "the datastream (Edge config) id of the app"),
        "requestId": ("string", "the SDK's request id, echoed back"),
    },
)
def interact(location_hint: str | None = None) -> Response:
    config_id = request.args.get("configId", "")
    request_id = request.args.get("requestId", "")[:64]
    body = json_object()
    session = db()
    app = apps.by_edge_config(session, config_id)
    if app is None:
        raise NotFound("unknown configId: no app has this Edge datastream id", code="unknown_config_id")
    events = body.get("events")
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise BadRequest(f"events must be a list of at most {MAX_EVENTS} events", code="invalid_event")
    ecid = _ecid(body)
    calls = []
    for event in events:
        if not isinstance(event, dict):
            raise BadRequest("each event must be an object", code="invalid_event")
        details = _dig(event, "data", "pushNotificationDetails")
        if details is not None:
            if not isinstance(details, list):
                raise BadRequest("pushNotificationDetails must be a list", code="invalid_event")
            _token_syncs(session, app, details, ecid)
        xdm = event.get("xdm")
        if isinstance(xdm, dict):
            call = _tracking_call(session, app, xdm, ecid)
            if call is not None:
                calls.append(call)
    for call in calls:
        matched = record(session, call, key=runtime().tracking_key)
        TRACKING_EVENTS.labels(SDK, call.interaction, str(matched).lower()).inc()
    session.commit()
    return _records([{"requestId": request_id, "handle": []}])


bp.add_url_rule("/ee/v1/interact", view_func=interact, methods=["POST"])
bp.add_url_rule("/ee/<location_hint>/v1/interact", view_func=interact, methods=["POST"])
