"""Message validation: the shapes of the HTTP v1 Message resource, as FCM checks them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from push.peers.fcm.common import INVALID_TOKEN_MESSAGE, MAX_PAYLOAD_BYTES, Invalid

_S, _B, _N, _I = "string", "bool", "number", "integer"
_SMAP, _SLIST, _DUR, _OBJ = "map<string,string>", "list<string>", "duration", "object"

_NOTIFICATION: dict[str, Any] = {"title": _S, "body": _S, "image": _S}
_COLOR = {"red": _N, "green": _N, "blue": _N, "alpha": _N}
_ANDROID_NOTIFICATION: dict[str, Any] = {
    **{name: _S for name in ("title", "body", "icon", "color", "sound", "tag", "click_action", "body_loc_key")},
    **{name: _S for name in ("title_loc_key", "channel_id", "ticker", "image", "event_time")},
    "body_loc_args": _SLIST,
    "title_loc_args": _SLIST,
    "sticky": _B,
    "local_only": _B,
    "default_sound": _B,
    "default_vibrate_timings": _B,
    "default_light_settings": _B,
    "bypass_proxy_notification": _B,
    "notification_count": _I,
    "vibrate_timings": [_DUR],
    "light_settings": {"color": _COLOR, "light_on_duration": _DUR, "light_off_duration": _DUR},
    "notification_priority": (
        "PRIORITY_UNSPECIFIED",
        "PRIORITY_MIN",
        "PRIORITY_LOW",
        "PRIORITY_DEFAULT",
        "PRIORITY_HIGH",
        "PRIORITY_MAX",
    ),
    "visibility": ("VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"),
    "proxy": ("PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"),
}
_ANDROID: dict[str, Any] = {
    "collapse_key": _S,
    "priority": ("NORMAL", "HIGH"),
    "ttl": _DUR,
    "restricted_package_name": _S,
    "data": _SMAP,
    "notification": _ANDROID_NOTIFICATION,
    "fcm_options": {"analytics_label": _S},
    "direct_boot_ok": _B,
    "bandwidth_constrained_ok": _B,
    "restricted_satellite_ok": _B,
}
_WEBPUSH: dict[str, Any] = {
    "headers": _SMAP,
    "data": _SMAP,
    "notification": _OBJ,
    "fcm_options": {"link": _S, "analytics_label": _S},
}
_APNS: dict[str, Any] = {
    "headers": _SMAP,
    "payload": _OBJ,
    "fcm_options": {"analytics_label": _S, "image": _S},
    "live_activity_token": _S,
}
_MESSAGE: dict[str, Any] = {
    "name": _S,
    "data": _SMAP,
    "notification": _NOTIFICATION,
    "android": _ANDROID,
    "webpush": _WEBPUSH,
    "apns": _APNS,
    "fcm_options": {"analytics_label": _S},
    "token": _S,
    "topic": _S,
    "condition": _S,
    "fid": _S,
}
_TARGETS = ("token", "topic", "condition", "fid")
_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")
_RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
_ANALYTICS_LABEL = re.compile(r"^[a-zA-Z0-9-_.~%]{1,50}$")


def type_error(path: str, kind: str, value: Any) -> Invalid:
    return Invalid(f"Invalid value at '{path}' ({kind}), {json.dumps(value)}", path)


def _check(value: Any, spec: Any, path: str) -> None:
    """Check ``value`` against a shape: a dict of fields, a tuple of enum names, a one-item list
    (repeated field) or a scalar kind name."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise type_error(path, "TYPE_MESSAGE", value)
        for key, item in value.items():
            if key not in spec:
                raise Invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field.")
            _check(item, spec[key], f"{path}.{key}")
    elif isinstance(spec, tuple):
        # Google's JSON parser takes enum names in either case (firebase-admin sends "high").
        if not isinstance(value, str) or value.upper() not in spec:
            raise type_error(path, "TYPE_ENUM", value)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise type_error(path, "TYPE_LIST", value)
        for index, item in enumerate(value):
            _check(item, spec[0], f"{path}[{index}]")
    else:
        _check_scalar(value, spec, path)


def _check_scalar(value: Any, kind: str, path: str) -> None:
    ok = {
        _S: isinstance(value, str),
        _B: isinstance(value, bool),
        _N: isinstance(value, int | float) and not isinstance(value, bool),
        _I: (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit()),
        _OBJ: isinstance(value, dict),
        _DUR: isinstance(value, str) and bool(_DURATION.match(value)),
        _SLIST: isinstance(value, list) and all(isinstance(v, str) for v in value),
        _SMAP: isinstance(value, dict),
    }[kind]
    if not ok:
        raise type_error(path, kind, value)
    if kind == _SMAP:
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(item, str):
                raise type_error(f"{path}[{index}].value", "TYPE_STRING", item)
            if path.endswith(".data") and (key in _RESERVED_DATA_KEYS or key.startswith(("google.", "gcm."))):
                raise Invalid(f"Invalid data payload key: {key}", f"{path}[{index}].key")


def validate_message(message: Any) -> str | None:
    """Check a ``message`` object like FCM; return its target token (``token`` or ``fid``), or None
    for topic/condition targets. Raises :class:`Invalid`."""
    _check(message, _MESSAGE, "message")
    targets = [name for name in _TARGETS if name in message]
    if not targets:
        raise Invalid("Recipient of the message is not set.")
    if len(targets) > 1:
        raise Invalid(
            f"Invalid value at 'message' (oneof), oneof field 'target' is already set. Cannot set '{targets[1]}'"
        )
    for path, label in (
        (("fcm_options",), "message.fcm_options"),
        (("android", "fcm_options"), "message.android.fcm_options"),
        (("apns", "fcm_options"), "message.apns.fcm_options"),
    ):
        options: Any = message
        for key in path:
            options = options.get(key, {}) if isinstance(options, dict) else {}
        label_value = options.get("analytics_label")
        if label_value is not None and not _ANALYTICS_LABEL.match(label_value):
            raise Invalid("Invalid analytics_label", f"{label}.analytics_label")
    aps = message.get("apns", {}).get("payload", {}).get("aps")
    if aps is not None and not isinstance(aps, dict):
        raise type_error("message.apns.payload.aps", "TYPE_MESSAGE", aps)
    link = message.get("webpush", {}).get("fcm_options", {}).get("link")
    if link is not None and not link.startswith("https://"):
        raise Invalid("Invalid link: must be an HTTPS URL", "message.webpush.fcm_options.link")
    token = message.get("token", message.get("fid"))
    if token is not None and not token:
        raise Invalid(INVALID_TOKEN_MESSAGE, "message.token", with_fcm_error=True)
    if payload_size(message) > MAX_PAYLOAD_BYTES:
        raise Invalid("Message is too big", "message", with_fcm_error=True)
    return token


def payload_size(message: Mapping[str, Any]) -> int:
    """The size FCM's 4096-byte limit is checked against here: the message without its target,
    as compact UTF-8 JSON."""
    payload = {k: v for k, v in message.items() if k not in _TARGETS}
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
