"""The APNs request for one iOS push: the payload and the request headers.

Keys, every SDK family: ``aps`` (``alert{title,subtitle,body}``, ``badge``, ``sound``,
``category``, ``thread-id``, ``mutable-content: 1`` with an image; silent: only
``content-available: 1``); ``adb_uri`` (deeplink); ``adb_media`` and ``mediaUrl`` (image, read by
the Notification Service Extension: AJO's helper reads ``adb_media``, Classic's documented sample
``mediaUrl``); ``adb_act`` (actions, a JSON array of ``{id, label, type, uri?}`` so the app can map
a category button id to its deeplink); then ``_mId``/``_dId``, the family's keys
(:func:`~push.payloads.keys.family_keys`, Edge's ``_xdm`` as a JSON *object*) and the custom
``data``. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

from domain.messages import Unsendable
from domain.templates.rendering import RenderedMessage
from push.payloads.keys import action_items, check_target, family_keys, tracking_ids
from push.payloads.size import fit


def build_payload(rendered: RenderedMessage, mid: str, did: str, sdk: str) -> dict[str, Any]:
    """The APNs payload with the text as rendered (not shortened to fit)."""
    payload: dict[str, Any] = {"aps": _aps(rendered), "_mId": mid, "_dId": did}
    if not rendered.silent:
        if rendered.image_url:
            payload["adb_media"] = rendered.image_url
            payload["mediaUrl"] = rendered.image_url
        if rendered.deeplink:
            payload["adb_uri"] = rendered.deeplink
        if rendered.actions:
            payload["adb_act"] = action_items(rendered.actions)
    payload.update(family_keys(rendered, mid, did, sdk, xdm_as_string=False))
    payload.update(rendered.data)
    return payload


def _aps(rendered: RenderedMessage) -> dict[str, Any]:
    if rendered.silent:
        return {"content-available": 1}
    texts = (("title", rendered.title), ("subtitle", rendered.subtitle), ("body", rendered.body))
    optional = (
        ("badge", rendered.badge),
        ("sound", rendered.sound),
        ("category", rendered.category),
        ("thread-id", rendered.thread_id),
        ("mutable-content", 1 if rendered.image_url else None),
    )
    aps: dict[str, Any] = {"alert": {key: value for key, value in texts if value}}
    aps.update((key, value) for key, value in optional if value is not None)
    return aps


def apns_headers(rendered: RenderedMessage, *, topic: str, expiration_epoch: int | None) -> dict[str, str]:
    """``apns-topic``, ``apns-push-type``, ``apns-priority``, ``apns-expiration``, ``apns-collapse-id``.

    Silent pushes are ``background`` with priority 5 (Apple refuses 10 for them). Expiration is
    ``"0"`` (deliver now or never) when ``ttl_seconds`` is 0, else ``expiration_epoch`` when given
    (the engine passes ``min(now + ttl, delivery validity end)``; see :func:`expiration`).
    """
    if not topic:
        raise Unsendable("an APNs push needs a topic (the app's bundle id)")
    headers = {
        "apns-topic": topic,
        "apns-push-type": "background" if rendered.silent else "alert",
        "apns-priority": "5" if rendered.silent or rendered.priority == "normal" else "10",
    }
    if rendered.ttl_seconds == 0:
        headers["apns-expiration"] = "0"
    elif expiration_epoch is not None:
        headers["apns-expiration"] = str(int(expiration_epoch))
    if rendered.collapse_id:
        headers["apns-collapse-id"] = rendered.collapse_id
    return headers


def expiration(rendered: RenderedMessage, *, now_epoch: float, not_after_epoch: float | None = None) -> int | None:
    """The ``expiration_epoch`` for :func:`apns_request`: ``now + ttl_seconds``, no later than
    ``not_after_epoch`` (the delivery's validity end); None when neither bounds it."""
    candidates = []
    if rendered.ttl_seconds is not None:
        candidates.append(now_epoch + rendered.ttl_seconds)
    if not_after_epoch is not None:
        candidates.append(not_after_epoch)
    return int(min(candidates)) if candidates else None


def apns_request(
    rendered: RenderedMessage,
    *,
    broadlog_id: int,
    delivery_id: int,
    sdk: str,
    topic: str,
    expiration_epoch: int | None = None,
    signature: str = "",
) -> tuple[dict[str, Any], dict[str, str]]:
    """The APNs payload and request headers for one iOS push; ``signature`` is the tracking
    signature of its ids (:func:`push.payloads.keys.tracking_ids`).

    Raises ``ValueError`` for ids that cannot be sent and :class:`~push.payloads.size.PayloadTooLarge`
    when the push cannot fit 4096 bytes even with its text shortened.
    """
    check_target(rendered, "ios", sdk)
    mid, did = tracking_ids(broadlog_id, delivery_id, sdk, signature)
    payload = fit(rendered, lambda r: build_payload(r, mid, did, sdk), copies=1, sdk=sdk)
    return payload, apns_headers(rendered, topic=topic, expiration_epoch=expiration_epoch)
