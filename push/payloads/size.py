"""The 4096-byte limit of APNs and FCM: the encoding sizes are measured in, and text shortened to fit.

APNs and FCM accept at most 4096 bytes. Sizes here are of compact JSON in UTF-8 (non-ASCII not
escaped): the provider must send APNs payloads encoded with :func:`encode` (or the same settings),
or its bytes differ from what was checked. For FCM the whole ``message`` object (without token) is
counted, which is a little more than FCM counts. When a rendered message is too large, :func:`fit`
first shortens the body, then the subtitle, then the title (ending them with ``…``); only what
cannot be shortened (ids, keys, links, data) raises :class:`PayloadTooLarge`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from domain.messages import Unsendable
from domain.templates.rendering import RenderedMessage
from domain.templates.sandbox import ELLIPSIS

MAX_PAYLOAD_BYTES = 4096
#: Compact JSON: what is measured, and what every JSON string inside a payload is written with.
SEPARATORS = (",", ":")

_TEXT_ORDER = ("body", "subtitle", "title")


class PayloadTooLarge(Unsendable):
    """A push that cannot fit in ``limit`` bytes even with its text shortened."""

    def __init__(self, message: str, *, size: int, platform: str, sdk: str, limit: int = MAX_PAYLOAD_BYTES) -> None:
        super().__init__(message)
        self.size = size
        self.platform = platform
        self.sdk = sdk
        self.limit = limit


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the form whose size is checked (and the one to send to APNs)."""
    return json.dumps(payload, separators=SEPARATORS, ensure_ascii=False).encode()


def payload_size(payload: dict[str, Any]) -> int:
    """Size in bytes of an APNs payload or an FCM message object, as :func:`encode` writes it."""
    return len(encode(payload))


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


def fit(
    rendered: RenderedMessage, build: Callable[[RenderedMessage], dict[str, Any]], *, copies: int, sdk: str
) -> dict[str, Any]:
    """``build(rendered)``, shortening text until it fits; :class:`PayloadTooLarge` if it cannot.

    ``copies`` is how many times the payload carries each text (FCM's ``notification`` block
    repeats the title and body of the ``adb_*`` data), so one cut removes enough from each."""
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
