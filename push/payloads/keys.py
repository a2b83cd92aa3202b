"""The ids every push carries and the keys both platforms share, per SDK family.

Every push carries ``_mId`` (the broadLog id, a decimal string below 2^32) and ``_dId`` (the
delivery id, a lower-case hex string) as top-level *string* values; :func:`message_id` and
:func:`delivery_hex` refuse ids that cannot be sent (:class:`~domain.messages.Unsendable`), and
:func:`tracking_ids` adds the tracking signature to the one the family's SDK passes through.
:func:`family_keys` gives the keys only one SDK family reads (Edge's ``_xdm``, Campaign
Standard's ``uri``, ``media-attachment-url`` and ``_acsDeliveryTracking``), :func:`action_items` the
buttons in the shape Adobe's SDKs parse. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from domain.messages import Action, Unsendable
from domain.templates.rendering import RenderedMessage
from domain.tracking import SIGNATURE_CHARS, signed
from push.payloads.size import SEPARATORS

Sdk = Literal["campaign-classic", "campaign-standard", "edge", "native"]
SDKS: tuple[Sdk, ...] = ("campaign-classic", "campaign-standard", "edge", "native")
MESSAGE_ID_LIMIT = 2**32  # _mId must stay below: iOS Classic keeps only the low 32 bits
#: Largest ids used for worst-case sizes (broadLog ids below 2^32; delivery ids are 32-bit).
WORST_BROADLOG_ID = MESSAGE_ID_LIMIT - 1
WORST_DELIVERY_ID = 2**31 - 1
#: A signature of the length every one has, for worst-case sizes.
WORST_SIGNATURE = "A" * SIGNATURE_CHARS

_WEB_SCHEMES = ("http://", "https://")


def message_id(broadlog_id: int) -> str:
    """``_mId``: the broadLog id in decimal; refused outside 1..2^32-1."""
    if isinstance(broadlog_id, bool) or not 0 < broadlog_id < MESSAGE_ID_LIMIT:
        raise Unsendable(f"broadLog id {broadlog_id} cannot be sent as _mId (it must be between 1 and 2^32-1)")
    return str(broadlog_id)


def delivery_hex(delivery_id: int) -> str:
    """``_dId``: the delivery id in lower-case hex."""
    if isinstance(delivery_id, bool) or delivery_id <= 0:
        raise Unsendable(f"delivery id {delivery_id} cannot be sent as _dId")
    return format(delivery_id, "x")


def tracking_ids(broadlog_id: int, delivery_id: int, sdk: str, signature: str = "") -> tuple[str, str]:
    """``(_mId, _dId)`` as the push carries them, the signature (:func:`domain.tracking.signature`)
    on the id that the family's SDKs copy into their tracking calls unchanged: ``_dId`` for
    Campaign Classic and native apps (their SDKs parse ``_mId`` as a number), ``_mId`` for Campaign
    Standard (its Android SDK parses ``_dId`` as a hex int) and Edge (``messageExecutionID``)."""
    mid, did = message_id(broadlog_id), delivery_hex(delivery_id)
    if sdk in ("campaign-standard", "edge"):
        return signed(mid, signature), did
    return mid, signed(did, signature)


def xdm(broadlog_id: int, delivery_id: int) -> dict[str, Any]:
    """The ``_xdm`` object for Edge apps: the ids the SDK copies into its tracking events."""
    return _xdm(message_id(broadlog_id), delivery_hex(delivery_id))


def _xdm(mid: str, did: str) -> dict[str, Any]:
    execution = {"messageExecutionID": mid, "messageID": did, "messagePublicationID": did}
    return {"cjm": {"_experience": {"customerJourneyManagement": {"messageExecution": execution}}}}


def action_type(link: str | None) -> str:
    """Adobe's ``adb_a_type`` for a link: ``OPENAPP`` without one, ``WEBURL`` or ``DEEPLINK``."""
    if not link:
        return "OPENAPP"
    return "WEBURL" if link.lower().startswith(_WEB_SCHEMES) else "DEEPLINK"


def action_items(actions: tuple[Action, ...]) -> list[dict[str, str]]:
    """``adb_act``: ``[{label, type, uri?, id}]``, the format of Adobe's ``ActionButton`` parser."""
    result = []
    for action in actions:
        item = {"label": action.title, "type": action_type(action.deeplink)}
        if action.deeplink:
            item["uri"] = action.deeplink
        item["id"] = action.id
        result.append(item)
    return result


def family_keys(rendered: RenderedMessage, mid: str, did: str, sdk: str, *, xdm_as_string: bool) -> dict[str, Any]:
    """Keys only one SDK family reads (both platforms)."""
    if sdk == "edge":
        value = _xdm(mid, did)
        return {"_xdm": json.dumps(value, separators=SEPARATORS) if xdm_as_string else value}
    if sdk == "campaign-standard":
        keys: dict[str, Any] = {"_acsDeliveryTracking": "on"}
        if rendered.deeplink and not rendered.silent:
            keys["uri"] = rendered.deeplink
        if rendered.image_url and not rendered.silent:
            keys["media-attachment-url"] = rendered.image_url
        return keys
    return {}


def check_target(rendered: RenderedMessage, platform: str, sdk: str) -> None:
    """Refuse (``ValueError``) a message rendered for another platform, or an unknown SDK family."""
    if rendered.platform != platform:
        raise ValueError(f"a message rendered for {rendered.platform} cannot be sent as an {platform} push")
    if sdk not in SDKS:
        raise ValueError(f"unknown SDK family {sdk!r}; expected one of {', '.join(SDKS)}")
