"""Payload builders: a rendered message plus its ids -> the APNs request or the FCM message.

Pure functions, no I/O. Every push carries ``_mId`` (the broadLog id, a decimal string below
2^32) and ``_dId`` (the delivery id, a lower-case hex string) as top-level *string* values: in the
APNs payload beside ``aps`` (iOS reads them with ``as? String``) and in FCM ``data``. The Classic
SDKs turn them into ``/r/?id=h{hex _mId},{_dId},{tag}``; Campaign Standard apps send them back
unchanged; :mod:`domain.tracking` parses both.

Keys per SDK family (``subscription.sdk``), beyond ``_mId``/``_dId`` and the custom ``data``:

========================  ==================================================================
every family, iOS          ``aps`` (``alert{title,subtitle,body}``, ``badge``, ``sound``,
                           ``category``, ``thread-id``, ``mutable-content: 1`` with an image;
                           silent: only ``content-available: 1``); ``adb_uri`` (deeplink);
                           ``adb_media`` and ``mediaUrl`` (image, read by the Notification
                           Service Extension: AJO's helper reads ``adb_media``, Classic's
                           documented sample ``mediaUrl``); ``adb_act`` (actions, a JSON array
                           of ``{id, label, type, uri?}`` so the app can map a category button
                           id to its deeplink)
every family, Android      FCM ``data`` with Adobe's keys: ``adb_version`` ("1"), ``adb_title``,
                           ``adb_body`` (always present on a visible push, ``""`` when unset:
                           Adobe's notification builder refuses a payload without any of the
                           three), ``adb_image``, ``adb_uri`` + ``adb_a_type``
                           (``DEEPLINK``/``WEBURL``/``OPENAPP``), ``adb_channel_id``,
                           ``adb_sound``, ``adb_n_priority`` (``PRIORITY_HIGH``/``PRIORITY_DEFAULT``),
                           ``adb_n_count`` (badge), ``adb_tag`` (collapse id), ``adb_act``
                           (JSON string: ``[{"label", "type", "uri"?, "id"}]``, the format of
                           Adobe's ``ActionButton`` parser; Adobe's SDKs report the *label* as
                           the clicked action's id, extra ``id`` is for native apps)
edge (AJO Messaging)       ``_xdm``: ``{"cjm": {"_experience": {"customerJourneyManagement":
                           {"messageExecution": {"messageExecutionID": "<_mId>", "messageID":
                           "<_dId>", "messagePublicationID": "<_dId>"}}}}}`` -- a JSON *object*
                           in the APNs payload, a JSON *string* in FCM data. Without it the
                           SDK sends no open/click tracking; with it the ids come back in the
                           tracking event's xdm.
campaign-standard          ``uri`` (deeplink), ``media-attachment-url`` (image),
                           ``_acsDeliveryTracking: "on"``
========================  ==================================================================

**FCM ``notification`` block.** Campaign Classic and Edge apps get *data-only* FCM messages:
their SDK (``AEPMessagingService.handleRemoteMessage`` / Messaging's push payload) builds the
notification from the ``adb_*`` keys, tracks the receive, and routes taps through its tracker
so opens and clicks are counted. An FCM notification message would instead be displayed by the
OS whenever the app is in the background, bypassing the SDK: no receive tracking, no buttons,
no image template, a tap that only launches the app. Campaign Standard and native apps have no
SDK that displays pushes, so they get the ``adb_*`` data *plus* an ``android.notification``
block (title, body, image, channel, sound, tag, priority, count), which the OS shows when the
app is in the background; the data rides along in the launch intent's extras, so the app can
still report the open with ``_mId``/``_dId``. A silent push is always data-only.

**Size.** APNs and FCM accept at most 4096 bytes. Sizes here are of compact JSON in UTF-8
(non-ASCII not escaped): the provider must send APNs payloads encoded with :func:`encode` (or the
same settings), or its bytes differ from what was checked. For FCM the whole ``message`` object
(without token) is counted, which is a little more than FCM counts. When a rendered message is
too large, the builders first shorten the body, then the subtitle, then the title (ending them
with ``…``); only what cannot be shortened (ids, keys, links, data) raises
:class:`PayloadTooLarge`. :func:`check_size`, run at creation, makes sure that cannot happen at
send time; see its docstring.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from domain.messages import PLATFORMS, Action, Unsendable
from domain.templates.rendering import RenderContext, RenderedMessage, RenderProblem, render
from domain.templates.sandbox import DATA_DYNAMIC_ALLOWANCE, ELLIPSIS, CompiledMessage, CompiledPlatform, data_limit

Sdk = Literal["campaign-classic", "campaign-standard", "edge", "native"]
SDKS: tuple[Sdk, ...] = ("campaign-classic", "campaign-standard", "edge", "native")
MAX_PAYLOAD_BYTES = 4096
MESSAGE_ID_LIMIT = 2**32  # _mId must stay below: iOS Classic keeps only the low 32 bits
#: Largest ids used for worst-case sizes (broadLog ids below 2^32; delivery ids are 32-bit).
WORST_BROADLOG_ID = MESSAGE_ID_LIMIT - 1
WORST_DELIVERY_ID = 2**31 - 1
#: Sent as ``adb_version``: Adobe's Android notification builder requires the key.
ADOBE_PAYLOAD_VERSION = "1"

_WEB_SCHEMES = ("http://", "https://")
_SEPARATORS = (",", ":")


class PayloadTooLarge(Unsendable):
    """A push that cannot fit in ``limit`` bytes even with its text shortened."""

    def __init__(self, message: str, *, size: int, platform: str, sdk: str, limit: int = MAX_PAYLOAD_BYTES) -> None:
        super().__init__(message)
        self.size = size
        self.platform = platform
        self.sdk = sdk
        self.limit = limit


# -- encoding and ids -----------------------------------------------------------------------------


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the form whose size is checked (and the one to send to APNs)."""
    return json.dumps(payload, separators=_SEPARATORS, ensure_ascii=False).encode()


def payload_size(payload: dict[str, Any]) -> int:
    """Size in bytes of an APNs payload or an FCM message object, as :func:`encode` writes it."""
    return len(encode(payload))


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


def xdm(broadlog_id: int, delivery_id: int) -> dict[str, Any]:
    """The ``_xdm`` object for Edge apps: the ids the SDK copies into its tracking events."""
    return _xdm(message_id(broadlog_id), delivery_hex(delivery_id))


def _xdm(mid: str, did: str) -> dict[str, Any]:
    execution = {"messageExecutionID": mid, "messageID": did, "messagePublicationID": did}
    return {"cjm": {"_experience": {"customerJourneyManagement": {"messageExecution": execution}}}}


def _action_type(link: str | None) -> str:
    if not link:
        return "OPENAPP"
    return "WEBURL" if link.lower().startswith(_WEB_SCHEMES) else "DEEPLINK"


def _actions(actions: tuple[Action, ...]) -> list[dict[str, str]]:
    result = []
    for action in actions:
        item = {"label": action.title, "type": _action_type(action.deeplink)}
        if action.deeplink:
            item["uri"] = action.deeplink
        item["id"] = action.id
        result.append(item)
    return result


# -- shortening text to fit -----------------------------------------------------------------------

_TEXT_ORDER = ("body", "subtitle", "title")


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def _shorten(text: str, remove: int) -> str:
    """``text`` made at least ``remove`` bytes (JSON-encoded) shorter, ending in an ellipsis."""
    target = _json_bytes(text) - remove - _json_bytes(ELLIPSIS)
    if target <= 0:
        return ""
    cut = len(text)
    size = _json_bytes(text)
    while cut > 0 and size > target:
        cut -= 1
        size -= _json_bytes(text[cut])
    kept = text[:cut].rstrip()
    return kept + ELLIPSIS if kept else ""


def _with_text(rendered: RenderedMessage, name: str, value: str | None) -> RenderedMessage:
    if name == "title":
        return dataclasses.replace(rendered, title=value)
    if name == "subtitle":
        return dataclasses.replace(rendered, subtitle=value)
    return dataclasses.replace(rendered, body=value)


def _fit(
    rendered: RenderedMessage, build: Callable[[RenderedMessage], dict[str, Any]], *, copies: int, sdk: str
) -> dict[str, Any]:
    """``build(rendered)``, shortening text until it fits; :class:`PayloadTooLarge` if it cannot."""
    payload = build(rendered)
    size = payload_size(payload)
    if size <= MAX_PAYLOAD_BYTES:
        return payload
    for name in _TEXT_ORDER:
        while size > MAX_PAYLOAD_BYTES and getattr(rendered, name):
            remove = -(-(size - MAX_PAYLOAD_BYTES) // copies)
            rendered = _with_text(rendered, name, _shorten(getattr(rendered, name), remove) or None)
            payload = build(rendered)
            size = payload_size(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"the {rendered.platform} push is {size} bytes without any text (ids, links, data and SDK keys); "
            f"at most {MAX_PAYLOAD_BYTES} are accepted",
            size=size,
            platform=rendered.platform,
            sdk=sdk,
        )
    return payload


# -- APNs -----------------------------------------------------------------------------------------


def _apns_payload(rendered: RenderedMessage, mid: str, did: str, sdk: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"aps": _aps(rendered), "_mId": mid, "_dId": did}
    if not rendered.silent:
        if rendered.image_url:
            payload["adb_media"] = rendered.image_url
            payload["mediaUrl"] = rendered.image_url
        if rendered.deeplink:
            payload["adb_uri"] = rendered.deeplink
        if rendered.actions:
            payload["adb_act"] = _actions(rendered.actions)
    payload.update(_family_keys(rendered, mid, did, sdk, xdm_as_string=False))
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


def _family_keys(rendered: RenderedMessage, mid: str, did: str, sdk: str, *, xdm_as_string: bool) -> dict[str, Any]:
    """Keys only one SDK family reads (both platforms)."""
    if sdk == "edge":
        value = _xdm(mid, did)
        return {"_xdm": json.dumps(value, separators=_SEPARATORS) if xdm_as_string else value}
    if sdk == "campaign-standard":
        keys: dict[str, Any] = {"_acsDeliveryTracking": "on"}
        if rendered.deeplink and not rendered.silent:
            keys["uri"] = rendered.deeplink
        if rendered.image_url and not rendered.silent:
            keys["media-attachment-url"] = rendered.image_url
        return keys
    return {}


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
) -> tuple[dict[str, Any], dict[str, str]]:
    """The APNs payload and request headers for one iOS push.

    Raises ``ValueError`` for ids that cannot be sent and :class:`PayloadTooLarge` when the push
    cannot fit 4096 bytes even with its text shortened.
    """
    _check(rendered, "ios", sdk)
    mid, did = message_id(broadlog_id), delivery_hex(delivery_id)
    payload = _fit(rendered, lambda r: _apns_payload(r, mid, did, sdk), copies=1, sdk=sdk)
    return payload, apns_headers(rendered, topic=topic, expiration_epoch=expiration_epoch)


# -- FCM ------------------------------------------------------------------------------------------


def _shows_notification_block(rendered: RenderedMessage, sdk: str) -> bool:
    return not rendered.silent and sdk in ("campaign-standard", "native")


def _fcm_message(rendered: RenderedMessage, mid: str, did: str, sdk: str, ttl_seconds: int | None) -> dict[str, Any]:
    data: dict[str, str] = {"_mId": mid, "_dId": did}
    if not rendered.silent:
        data.update(_adobe_android_keys(rendered))
    data.update(_family_keys(rendered, mid, did, sdk, xdm_as_string=True))
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
        "adb_a_type": _action_type(rendered.deeplink),
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
        keys["adb_act"] = json.dumps(_actions(rendered.actions), separators=_SEPARATORS, ensure_ascii=False)
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
) -> dict[str, Any]:
    """The FCM HTTP v1 ``message`` object for one Android push, without ``token``.

    ``ttl_seconds`` overrides the message's own (the engine may pass what is left of the
    delivery's validity when that is shorter). Raises like :func:`apns_request`.
    """
    _check(rendered, "android", sdk)
    mid, did = message_id(broadlog_id), delivery_hex(delivery_id)
    if ttl_seconds is not None and ttl_seconds < 0:
        raise ValueError("ttl_seconds must not be negative")
    copies = 2 if _shows_notification_block(rendered, sdk) else 1
    return _fit(rendered, lambda r: _fcm_message(r, mid, did, sdk, ttl_seconds), copies=copies, sdk=sdk)


def _check(rendered: RenderedMessage, platform: str, sdk: str) -> None:
    if rendered.platform != platform:
        raise ValueError(f"a message rendered for {rendered.platform} cannot be sent as an {platform} push")
    if sdk not in SDKS:
        raise ValueError(f"unknown SDK family {sdk!r}; expected one of {', '.join(SDKS)}")


# -- creation-time size check ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SizeReport:
    """Sizes of one platform x SDK family's push, with the largest ids."""

    platform: str
    sdk: str
    sample_bytes: int  # the push for the sample context, text not shortened
    floor_bytes: int  # worst case of what cannot be shortened: every text empty, data at its limit


def _build_unfitted(rendered: RenderedMessage, sdk: str) -> dict[str, Any]:
    mid, did = message_id(WORST_BROADLOG_ID), delivery_hex(WORST_DELIVERY_ID)
    if rendered.platform == "ios":
        return _apns_payload(rendered, mid, did, sdk)
    return _fcm_message(rendered, mid, did, sdk, None)


def _floor(part: CompiledPlatform) -> RenderedMessage:
    """The part of ``part``'s push no text shortening can reduce, at its largest."""
    data = []
    for key, template in part.data:
        if template.static is not None:
            data.append((key, template.static))
        else:  # an ASCII filler of the largest size the value may render to
            data.append((key, "x" * data_limit(template)))
    fields = part.fields()
    fields.update(title=None, subtitle=None, body=None, data=tuple(data))
    return RenderedMessage(**fields)


def check_size(
    compiled: CompiledMessage,
    sample_context: RenderContext | None = None,
    *,
    sdks: Iterable[str] = SDKS,
) -> list[SizeReport]:
    """Refuse, at creation, a message that could be too large at send time.

    For every compiled platform and every SDK family in ``sdks`` (all four by default: the
    audience can hold any), with the largest ids (``_mId`` 4294967295, ``_dId`` 7fffffff):

    1. the *floor* -- the push with every text field empty and every data value at the largest
       size its template can render to (static values exactly; templated ones at their literal
       text plus ``DATA_DYNAMIC_ALLOWANCE`` bytes, the limit :func:`domain.templates.rendering.render`
       enforces) -- must fit 4096 bytes;
    2. the push rendered for ``sample_context`` (the preview profile) must fit without
       shortening any text. Without a sample, an empty profile is used, which leaves the
       literal text every recipient gets (skipped if a template cannot render without data).

    Guarantee when it returns: for those platforms and SDK families, :func:`apns_request` and
    :func:`fcm_message` never raise :class:`PayloadTooLarge` at send time, whatever the profile
    (only text can grow beyond the floor, and text is shortened to fit); and the sample renders
    in full. A template failing for the given sample raises :class:`domain.templates.rendering.RenderProblem`.
    Returns the sizes (for the preview endpoint); raises :class:`PayloadTooLarge` otherwise.
    """
    reports = []
    for platform in PLATFORMS:
        part = compiled.platforms.get(platform)
        if part is None:
            continue
        if sample_context is not None:
            rendered: RenderedMessage | None = render(compiled, sample_context, platform)
        else:
            try:  # the literal text every recipient gets; a template may fail without data
                rendered = render(compiled, RenderContext({}, {"platform": platform}), require_text=False)
            except RenderProblem:
                rendered = None
        floor_message = _floor(part)
        for sdk in sdks:
            floor = payload_size(_build_unfitted(floor_message, sdk))
            name = _PLATFORM_NAMES[platform]
            if floor > MAX_PAYLOAD_BYTES:
                raise PayloadTooLarge(
                    f"the {name} push can reach {floor} bytes for {sdk} apps before any title or body "
                    f"(ids, links, actions, SDK keys and data values at their largest: a personalised data value "
                    f"may add {DATA_DYNAMIC_ALLOWANCE} bytes to its text); at most {MAX_PAYLOAD_BYTES} are accepted",
                    size=floor,
                    platform=platform,
                    sdk=sdk,
                )
            sample = floor if rendered is None else payload_size(_build_unfitted(rendered, sdk))
            if sample > MAX_PAYLOAD_BYTES:
                raise PayloadTooLarge(
                    f"the {name} push is {sample} bytes for {sdk} apps (at most {MAX_PAYLOAD_BYTES}); "
                    f"shorten the title, subtitle or body by {sample - MAX_PAYLOAD_BYTES} bytes",
                    size=sample,
                    platform=platform,
                    sdk=sdk,
                )
            reports.append(SizeReport(platform, sdk, sample, floor))
    return reports


_PLATFORM_NAMES = {"ios": "iOS", "android": "Android"}
