"""The FCM HTTP v1 ``message`` object for one Android push (without ``token``).

Keys, every SDK family: FCM ``data`` with Adobe's keys: ``adb_version`` ("1"), ``adb_title``,
``adb_body`` (always present on a visible push, ``""`` when unset: Adobe's notification builder
refuses a payload without any of the three), ``adb_image``, ``adb_uri`` + ``adb_a_type``
(``DEEPLINK``/``WEBURL``/``OPENAPP``), ``adb_channel_id``, ``adb_sound``, ``adb_n_priority``
(``PRIORITY_HIGH``/``PRIORITY_DEFAULT``), ``adb_n_count`` (badge), ``adb_tag`` (collapse id),
``adb_act`` (JSON string: ``[{"label", "type", "uri"?, "id"}]``, the format of Adobe's
``ActionButton`` parser; Adobe's SDKs report the *label* as the clicked action's id, extra ``id``
is for native apps); then ``_mId``/``_dId``, the family's keys
(:func:`~push.payloads.keys.family_keys`, Edge's ``_xdm`` as a JSON *string*) and the custom
``data``.

**The ``notification`` block.** Campaign Classic and Edge apps get *data-only* FCM messages:
their SDK (``AEPMessagingService.handleRemoteMessage`` / Messaging's push payload) builds the
notification from the ``adb_*`` keys, tracks the receive, and routes taps through its tracker
so opens and clicks are counted. An FCM notification message would instead be displayed by the
OS whenever the app is in the background, bypassing the SDK: no receive tracking, no buttons,
no image template, a tap that only launches the app. Campaign Standard and native apps have no
SDK that displays pushes, so they get the ``adb_*`` data *plus* an ``android.notification``
block (title, body, image, channel, sound, tag, priority, count), which the OS shows when the
app is in the background; the data rides along in the launch intent's extras, so the app can
still report the open with ``_mId``/``_dId``. A silent push is always data-only.
"""

from __future__ import annotations

import json
from typing import Any

from domain.templates.rendering import RenderedMessage
from push.payloads.keys import action_items, action_type, check_target, family_keys, tracking_ids
from push.payloads.size import SEPARATORS, fit

#: Sent as ``adb_version``: Adobe's Android notification builder requires the key.
ADOBE_PAYLOAD_VERSION = "1"


def _shows_notification_block(rendered: RenderedMessage, sdk: str) -> bool:
    return not rendered.silent and sdk in ("campaign-standard", "native")


def build_message(rendered: RenderedMessage, mid: str, did: str, sdk: str, ttl_seconds: int | None) -> dict[str, Any]:
    """The ``message`` object with the text as rendered (not shortened to fit)."""
    data: dict[str, str] = {"_mId": mid, "_dId": did}
    if not rendered.silent:
        data.update(_adobe_android_keys(rendered))
    data.update(family_keys(rendered, mid, did, sdk, xdm_as_string=True))
    data.update(rendered.data)
    android: dict[str, Any] = {"priority": "HIGH" if rendered.priority == "high" else "NORMAL"}
    ttl = rendered.ttl_seconds if ttl_seconds is None else ttl_seconds
    if ttl is not None:
        android["ttl"] = f"{ttl}s"
    if rendered.collapse_id:
        android["collapse_key"] = rendered.collapse_id
    if _shows_notification_block(rendered, sdk):
        android["notification"] = _android_notification(rendered)
    return {"data": data, "android": android}


def _notification_priority(rendered: RenderedMessage) -> str:
    return "PRIORITY_HIGH" if rendered.priority == "high" else "PRIORITY_DEFAULT"


def _adobe_android_keys(rendered: RenderedMessage) -> dict[str, str]:
    """The ``adb_*`` data keys Adobe's Android SDKs build a notification from."""
    keys = {
        "adb_version": ADOBE_PAYLOAD_VERSION,
        "adb_title": rendered.title or "",
        "adb_body": rendered.body or "",
        "adb_a_type": action_type(rendered.deeplink),
        "adb_n_priority": _notification_priority(rendered),
    }
    optional = (
        ("adb_uri", rendered.deeplink),
        ("adb_image", rendered.image_url),
        ("adb_channel_id", rendered.android_channel_id),
        ("adb_sound", rendered.sound),
        ("adb_n_count", None if rendered.badge is None else str(rendered.badge)),
        ("adb_tag", rendered.collapse_id),
    )
    keys.update((key, value) for key, value in optional if value)
    if rendered.actions:
        keys["adb_act"] = json.dumps(action_items(rendered.actions), separators=SEPARATORS, ensure_ascii=False)
    return keys


def _android_notification(rendered: RenderedMessage) -> dict[str, Any]:
    """FCM's ``android.notification``: what the OS shows while the app is in the background."""
    fields = (
        ("title", rendered.title),
        ("body", rendered.body),
        ("image", rendered.image_url),
        ("channel_id", rendered.android_channel_id),
        ("sound", rendered.sound),
        ("tag", rendered.collapse_id),
        ("notification_priority", _notification_priority(rendered)),
        ("notification_count", rendered.badge),
    )
    return {key: value for key, value in fields if value is not None and value != ""}


def fcm_message(
    rendered: RenderedMessage,
    *,
    broadlog_id: int,
    delivery_id: int,
    sdk: str,
    ttl_seconds: int | None = None,
    signature: str = "",
) -> dict[str, Any]:
    """The FCM HTTP v1 ``message`` object for one Android push, without ``token``.

    ``ttl_seconds`` overrides the message's own (the engine may pass what is left of the
    delivery's validity when that is shorter). Raises like :func:`push.payloads.apns.apns_request`.
    """
    check_target(rendered, "android", sdk)
    mid, did = tracking_ids(broadlog_id, delivery_id, sdk, signature)
    if ttl_seconds is not None and ttl_seconds < 0:
        raise ValueError("ttl_seconds must not be negative")
    copies = 2 if _shows_notification_block(rendered, sdk) else 1
    return fit(rendered, lambda r: build_message(r, mid, did, sdk, ttl_seconds), copies=copies, sdk=sdk)
