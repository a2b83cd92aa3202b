"""The FCM HTTP v1 ``Message`` pushgate sends: its shape as a JSON Schema, and the request body.

Contract: :func:`problem` returns None for a payload FCM can take (the ``message`` object of
``messages:send`` without its target: the provider adds ``token``), or a sentence naming the first
field that is wrong; :func:`request_body` writes ``{"message": {..., "token": ...}}`` as compact
UTF-8 JSON. Nothing is converted: the body is the payload pushgate built, plus the token.

The schema follows the Message resource of the HTTP v1 reference (fields, types, enum names,
duration strings such as ``3600s``, string-only ``data`` maps), so a message FCM would refuse for
its shape is refused here without a request. Enum names are taken in either case, as Google's JSON
parser takes them. What depends on FCM's state (the token, the project, the 4096-byte limit as FCM
measures it) is left to FCM's answer. jsonschema-rs checks a typical message in a few
microseconds, where converting it to firebase-admin's classes and encoding it again cost ~0.2 ms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema_rs

_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_NUMBER = {"type": "number"}
_STRINGS = {"type": "array", "items": _STRING}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}
_DURATION = {"type": "string", "pattern": r"^\d+(\.\d{1,9})?s$"}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_ANY_OBJECT = {"type": "object"}


def _enum(*names: str) -> dict[str, Any]:
    return {"type": "string", "pattern": "(?i)^(" + "|".join(names) + ")$"}


def _fields(properties: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "additionalProperties": False}


_NOTIFICATION = _fields({"title": _STRING, "body": _STRING, "image": _STRING})
_ANDROID_NOTIFICATION = _fields(
    {
        **dict.fromkeys(
            (
                "title",
                "body",
                "icon",
                "sound",
                "tag",
                "click_action",
                "body_loc_key",
                "title_loc_key",
                "channel_id",
                "ticker",
                "image",
            ),
            _STRING,
        ),
        "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
        "body_loc_args": _STRINGS,
        "title_loc_args": _STRINGS,
        "event_time": _TIMESTAMP,
        **dict.fromkeys(
            (
                "sticky",
                "local_only",
                "default_sound",
                "default_vibrate_timings",
                "default_light_settings",
                "bypass_proxy_notification",
            ),
            _BOOL,
        ),
        "notification_priority": _enum(
            "PRIORITY_UNSPECIFIED", "PRIORITY_MIN", "PRIORITY_LOW", "PRIORITY_DEFAULT", "PRIORITY_HIGH", "PRIORITY_MAX"
        ),
        "visibility": _enum("VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"),
        "proxy": _enum("PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"),
        "notification_count": {"type": "integer", "minimum": 0},
        "vibrate_timings": {"type": "array", "items": _DURATION},
        "light_settings": {
            **_fields(
                {
                    "color": _fields(dict.fromkeys(("red", "green", "blue", "alpha"), _NUMBER)),
                    "light_on_duration": _DURATION,
                    "light_off_duration": _DURATION,
                }
            ),
            "required": ["color", "light_on_duration", "light_off_duration"],
        },
    }
)
_ANDROID = _fields(
    {
        "collapse_key": _STRING,
        "priority": _enum("NORMAL", "HIGH"),
        "ttl": _DURATION,
        "restricted_package_name": _STRING,
        "data": _STRING_MAP,
        "notification": _ANDROID_NOTIFICATION,
        "fcm_options": _fields({"analytics_label": _STRING}),
        "direct_boot_ok": _BOOL,
        "bandwidth_constrained_ok": _BOOL,
        "restricted_satellite_ok": _BOOL,
    }
)
_APNS = _fields(
    {
        "headers": _STRING_MAP,
        "payload": {"type": "object", "properties": {"aps": _ANY_OBJECT}},
        "fcm_options": _fields({"analytics_label": _STRING, "image": _STRING}),
        "live_activity_token": _STRING,
    }
)
_WEBPUSH = _fields(
    {
        "headers": _STRING_MAP,
        "data": _STRING_MAP,
        "notification": _ANY_OBJECT,
        "fcm_options": _fields({"link": {"type": "string", "pattern": "^https://"}, "analytics_label": _STRING}),
    }
)
#: The Message resource without ``name`` and the target fields, which are not the payload's.
MESSAGE_SCHEMA: dict[str, Any] = _fields(
    {
        "data": _STRING_MAP,
        "notification": _NOTIFICATION,
        "android": _ANDROID,
        "apns": _APNS,
        "webpush": _WEBPUSH,
        "fcm_options": _fields({"analytics_label": _STRING}),
    }
)
_VALIDATOR = jsonschema_rs.validator_for(MESSAGE_SCHEMA, validate_formats=True)


def problem(payload: Mapping[str, Any]) -> str | None:
    """None when ``payload`` has the Message resource's shape, else what is wrong with it."""
    if _VALIDATOR.is_valid(payload):
        return None
    error = next(iter(_VALIDATOR.iter_errors(payload)))
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.instance_path)
    return f"message{where}: {error.message}"


def request_body(payload: Mapping[str, Any], token: str) -> bytes:
    """``{"message": payload + token}`` as compact UTF-8 JSON, written once."""
    encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    target = '"token":' + json.dumps(token, ensure_ascii=False)
    if encoded == "{}":
        return ('{"message":{' + target + "}}").encode()
    return ('{"message":{' + target + "," + encoded[1:] + "}").encode()
