"""Tracking: turning SDK tracking calls into trackingLog rows linked to their broadLog message.

A call counts only when it names a message that was sent (its broadLog row exists, is Sent, and
belongs to the named delivery, and to the named app when the call comes through an app's own
endpoint); anything else records nothing, since tracking URLs are public and guessable. A message
is received once and opened once: repeats write nothing (a unique index holds it under concurrent
calls), and it is clicked at most once a minute per action, so repeating a public URL cannot
inflate the trackingLog the Platform receives, nor a delivery's rates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.fields import lookup_key
from store.codes import BroadLogStatus
from store.models import BroadLog, Delivery, TrackingLog
from store.types import utcnow

RECEIVED, OPENED, CLICKED = "received", "opened", "clicked"
#: A tracking signature's length (base64url of 64 bits) and what joins it to the id it rides on.
SIGNATURE_CHARS = 11
SIGNATURE_SEPARATOR = "."
#: The least time between two recorded clicks of one message on one action.
CLICK_SPACING = timedelta(minutes=1)

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
    #: The app the call came through (Edge: the datastream's), when the endpoint names one.
    app_id: int | None = None
    #: The signature the call carried with the ids (:func:`signature`), if any.
    signature: str | None = None
    #: Named by the push provider's message id (Edge's Android receive), not by our ids.
    via_provider_id: bool = False


def signature(key: bytes, broadlog_id: int, delivery_id: int) -> str:
    """The short MAC a push carries with its ids (64 bits, :data:`SIGNATURE_CHARS` base64url
    characters), so that a tracking call can only name a message it was sent. Sequential ids
    alone would let anyone record opens for every message of a delivery."""
    digest = hmac.new(key, f"{broadlog_id}:{delivery_id}".encode(), hashlib.sha256).digest()[:8]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed(value: str, mac: str) -> str:
    """An id as a push carries it with its signature: ``{id}.{signature}`` (``.`` is in no id
    and in no base64url signature; every SDK passes it through unchanged)."""
    return f"{value}{SIGNATURE_SEPARATOR}{mac}" if mac else value


def _split(raw: str) -> tuple[str, str | None]:
    value, separator, mac = raw.strip().partition(SIGNATURE_SEPARATOR)
    return value, (mac if separator else None)


def parse_message_id(raw: str) -> tuple[int, str | None] | None:
    """``_mId`` as it comes back, with the signature it may carry: ``h`` + hex (Classic SDKs
    convert our decimal), or the decimal itself, possibly signed (Campaign Standard and Edge pass
    ``_mId`` unchanged). UUIDs and junk give None."""
    value, mac = _split(raw)
    try:
        number = int(value[1:], 16) if value[:1] in ("h", "H") else int(value, 10)
    except ValueError:
        return None
    return (number, mac) if 0 < number < 2**63 else None


def parse_delivery_id(raw: str) -> tuple[int, str | None] | None:
    """``_dId`` as we sent it: lower-case hex, possibly signed (Campaign Classic and native)."""
    value, mac = _split(raw)
    try:
        number = int(value, 16)
    except ValueError:
        return None
    return (number, mac) if 0 < number < 2**63 else None


def message_by_provider_id(session: Session, provider_message_id: str) -> int | None:
    """The broadLog id of the message the provider knows as ``provider_message_id`` (an Edge
    tracking call may name only that); None when no message is."""
    if not lookup_key(provider_message_id, 255):
        return None
    return session.scalar(select(BroadLog.id).where(BroadLog.provider_message_id == provider_message_id))


def record(session: Session, call: TrackingCall, *, key: bytes) -> bool:
    """Store ``call`` when it names a sent message (with its signature under ``key``, for
    deliveries sent signed) and is not a repeat; True when stored."""
    broadlog = _sent_message(session, call, key)
    if broadlog is None:
        return False
    action_id = lookup_key(call.action_id, 255)  # client text: kept only when storable
    if call.interaction == CLICKED and _clicked_lately(session, broadlog.id, call.tag[:32], action_id):
        return False
    row = TrackingLog(
        broadlog_id=broadlog.id,
        delivery_id=broadlog.delivery_id,
        profile_id=broadlog.profile_id,
        interaction=call.interaction,
        source=call.source,
        tag=call.tag[:32],
        action_id=action_id,
        ecid=lookup_key(call.ecid, 64),
    )
    if call.interaction == CLICKED:
        session.add(row)
        return True
    try:
        with session.begin_nested():  # the unique index answers a concurrent repeat
            session.add(row)
    except IntegrityError:
        return False
    return True


def _sent_message(session: Session, call: TrackingCall, key: bytes) -> BroadLog | None:
    """The Sent broadLog row the call names, of the delivery (and app) it names, with a valid
    signature when its delivery was sent signed; else None."""
    broadlog = session.get(BroadLog, call.broadlog_id)
    if broadlog is None or broadlog.status != BroadLogStatus.SENT:
        return None
    if call.delivery_id is not None and broadlog.delivery_id != call.delivery_id:
        return None
    delivery = session.get(Delivery, broadlog.delivery_id)
    if delivery is None or (call.app_id is not None and delivery.app_id != call.app_id):
        return None
    if delivery.signed_tracking and not _signed_by(call, key, broadlog):
        return None
    return broadlog


def _signed_by(call: TrackingCall, key: bytes, broadlog: BroadLog) -> bool:
    if call.signature is None and call.via_provider_id:
        return True  # named by the provider's own message id, which only the device received
    expected = signature(key, broadlog.id, broadlog.delivery_id)
    return call.signature is not None and hmac.compare_digest(call.signature.encode(), expected.encode())


def _clicked_lately(session: Session, broadlog_id: int, tag: str, action_id: str | None) -> bool:
    """Whether the same action of the message was clicked less than :data:`CLICK_SPACING` ago. An
    action is the tag (Campaign Standard's action number, Edge's event type) with the action id."""
    same_action = TrackingLog.action_id.is_(None) if action_id is None else TrackingLog.action_id == action_id
    since = utcnow() - CLICK_SPACING
    return (
        session.scalar(
            select(TrackingLog.id)
            .where(
                TrackingLog.broadlog_id == broadlog_id,
                TrackingLog.interaction == CLICKED,
                TrackingLog.tag == tag,
                same_action,
                TrackingLog.log_date > since,
            )
            .limit(1)
        )
        is not None
    )
