"""What the local emulators received: one record per request, accepted or not, per platform.

Emulators run on their own threads and event loops while tests, the inbox API and the inbox page
read from others, so every method takes one lock. Records are plain dicts (JSON-ready)::

    {"token": "...", "headers": {...}, "payload": {...} | None, "status": 200, "reason": None,
     "received_at": "2025-01-01T12:00:00.000000+00:00", ...}

``headers`` never contain ``authorization``: the inbox is shown on a page and must not leak
credentials. An emulator may add keys of its own (``apns_id``, ``auth``...).
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

DEFAULT_LIMIT = 200_000


class Inbox:
    """A thread-safe, bounded list of request records, oldest first.

    ``limit`` bounds memory when an emulator serves a long benchmark: the oldest records are
    dropped first.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._lock = threading.Lock()
        self._records: deque[tuple[str, dict[str, Any]]] = deque(maxlen=limit)

    def add(self, platform: str, record: dict[str, Any]) -> None:
        """Store ``record`` under ``platform`` ("ios", "android"...), stamping ``received_at``
        when missing and dropping any ``authorization`` header."""
        stored = dict(record)
        stored.setdefault("received_at", now_iso())
        headers = stored.get("headers")
        if isinstance(headers, dict):
            stored["headers"] = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        with self._lock:
            self._records.append((platform, stored))

    def items(self, platform: str | None = None) -> list[dict[str, Any]]:
        """Copies of the records, oldest first, of one platform or all (each then has ``platform``)."""
        with self._lock:
            selected = [(p, r) for p, r in self._records if platform is None or p == platform]
        if platform is not None:
            return [copy.deepcopy(r) for _, r in selected]
        return [{**copy.deepcopy(r), "platform": p} for p, r in selected]

    def count(self, platform: str | None = None) -> int:
        with self._lock:
            if platform is None:
                return len(self._records)
            return sum(1 for p, _ in self._records if p == platform)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


def now_iso() -> str:
    """The current UTC time in ISO 8601 with microseconds and offset."""
    return datetime.now(UTC).isoformat()
