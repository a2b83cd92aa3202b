"""Push tracking calls of the Campaign SDKs: ``GET /r/?id=...`` (docs/protocols.md §1.2, §2.3).

Classic: ``id=h{hex _mId},{_dId},{tag}``. Standard: ``id={_mId},{_dId},{action}&mcId={ECID}``.
One of the two ids carries the push's tracking signature as ``.{signature}`` (``_dId`` for
Classic and native apps, ``_mId`` for Standard: :func:`push.payloads.keys.tracking_ids`).
The SDKs never retry and ignore the body, so the answer is always an immediate, empty 200:
a malformed or unknown id records nothing and tells a prober nothing.
"""

from __future__ import annotations

from flask import Response, request

from core.metrics import TRACKING_EVENTS
from domain.tracking import (
    CLASSIC_TAGS,
    STANDARD_ACTIONS,
    TrackingCall,
    parse_delivery_id,
    parse_message_id,
    record,
)
from gateway.openapi import operation
from gateway.runtime import db, runtime
from gateway.sdk import public_blueprint

bp = public_blueprint("tracking")


def parse(args_id: str, mcid: str | None) -> TrackingCall | None:
    parts = args_id.split(",")
    if len(parts) != 3 or len(args_id) > 200:
        return None
    message, delivery = parse_message_id(parts[0]), parse_delivery_id(parts[1])
    if message is None or delivery is None or (message[1] is not None and delivery[1] is not None):
        return None
    (message_id, message_mac), (delivery_id, delivery_mac) = message, delivery
    tag = parts[2].strip()
    if mcid is not None:
        interaction = STANDARD_ACTIONS.get(tag)
        source = "campaign-standard"
    else:
        interaction = CLASSIC_TAGS.get(tag)
        source = "campaign-classic"
    if interaction is None:
        return None
    return TrackingCall(
        message_id, delivery_id, interaction, source, tag, ecid=mcid or None, signature=message_mac or delivery_mac
    )


@bp.get("/r/")
@operation(
    "Track a push receive, open or click (Campaign Classic and Standard SDKs)",
    tag="Tracking",
    public=True,
    query={
        "id": (
            "string",
            "h{hex message id},{hex delivery id},{tag} (Classic) or {message id},{delivery id},{action}",
        ),
        "mcId": ("string", "the ECID (Campaign Standard only)"),
    },
    description="Always answers 200 with an empty body; only ids of sent messages are recorded.",
)
def track() -> Response:
    call = parse(request.args.get("id", ""), request.args.get("mcId"))
    if call is None:
        TRACKING_EVENTS.labels("unknown", "unknown", "false").inc()
        return Response(status=200)
    session = db()
    matched = record(session, call, key=runtime().tracking_key)
    if matched:
        session.commit()
    TRACKING_EVENTS.labels(call.source, call.interaction, str(matched).lower()).inc()
    return Response(status=200)
