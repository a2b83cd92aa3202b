"""Tracking: turning SDK tracking calls into trackingLog rows linked to their broadLog message.

A call counts only when it names a message that was sent (its broadLog row exists, is Sent, and
belongs to the named delivery); anything else records nothing, since tracking URLs are public
and guessable. Raw rows are kept; counts are unique per message and interaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.fields import lookup_key
from store.codes import BroadLogStatus
from store.models import BroadLog, TrackingLog

RECEIVED, OPENED, CLICKED = "received", "opened", "clicked"

#: Campaign Classic ``/r/`` tags: 1 received, 2 clicked (the SDK's "opened" in the counts).
CLASSIC_TAGS = {"1": RECEIVED, "2": OPENED}
#: Campaign Standard actions: 1 open, 2 click, 3-5 in-app buttons, 7 impression (received).
STANDARD_ACTIONS = {"1": OPENED, "2": CLICKED, "3": CLICKED, "4": CLICKED, "5": CLICKED, "7": RECEIVED}
#: Edge ``pushTracking.*`` event types.
EDGE_EVENTS = {
    "pushTracking.receive": RECEIVED,
    "pushTracking.applicationOpened": OPENED,
    "pushTracking.customAction": CLICKED,
}


@dataclass(frozen=True)
class TrackingCall:
    broadlog_id: int
    delivery_id: int | None
    interaction: str
    source: str
    tag: str
    action_id: str | None = None
    ecid: str | None = None


def parse_message_id(raw: str) -> int | None:
    """``_mId`` as it comes back: ``h`` + hex (Classic SDKs convert our decimal), or the decimal
    itself (Campaign Standard passes ``_mId`` unchanged). UUIDs and junk give None."""
    raw = raw.strip()
    try:
        value = int(raw[1:], 16) if raw[:1] in ("h", "H") else int(raw, 10)
    except ValueError:
        return None
    return value if 0 < value < 2**63 else None


def parse_delivery_id(raw: str) -> int | None:
    """``_dId`` as we sent it: lower-case hex."""
    try:
        value = int(raw.strip(), 16)
    except ValueError:
        return None
    return value if 0 < value < 2**63 else None


def message_by_provider_id(session: Session, provider_message_id: str) -> int | None:
    """The broadLog id of the message the provider knows as ``provider_message_id`` (an Edge
    tracking call may name only that); None when no message is."""
    if not lookup_key(provider_message_id, 255):
        return None
    return session.scalar(select(BroadLog.id).where(BroadLog.provider_message_id == provider_message_id))


def record(session: Session, call: TrackingCall) -> bool:
    """Store ``call`` when it names a sent message; True when stored."""
    broadlog = session.get(BroadLog, call.broadlog_id)
    if broadlog is None or broadlog.status != BroadLogStatus.SENT:
        return False
    if call.delivery_id is not None and broadlog.delivery_id != call.delivery_id:
        return False
    session.add(
        TrackingLog(
            broadlog_id=broadlog.id,
            delivery_id=broadlog.delivery_id,
            profile_id=broadlog.profile_id,
            interaction=call.interaction,
            source=call.source,
            tag=call.tag[:32],
            action_id=lookup_key(call.action_id, 255),  # client text: kept only when storable
            ecid=lookup_key(call.ecid, 64),
        )
    )
    return True
