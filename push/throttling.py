"""Pauses after throttling: which platform of which delivery a worker holds off sending, and until when.

Contract: :meth:`Pauses.note` looks at one batch's results for one platform and, when at least
:data:`THROTTLED_SHARE` of them were THROTTLED, pauses that platform of the delivery for the longest
``retry_after`` asked (at least ``minimum`` seconds); :meth:`Pauses.left` says how long a pause has
to run. Per process, in memory: each worker learns of a spent quota from its own answers.

Why: FCM answers 429 QUOTA_EXCEEDED to every message once a project's per-minute quota is spent,
until it refills. Claiming and sending the rest of the delivery meanwhile would only earn more
429s, each a database round trip; the messages that were throttled wait for their own retry time.
Fewer throttled messages in a batch are one device's or one topic's rate, which the others need
not wait for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from push.providers.base import ErrorKind, SendResult
from store.codes import Channel

log = logging.getLogger("pushgate.engine")
THROTTLED_SHARE = 0.5


class Pauses:
    def __init__(self, minimum: float) -> None:
        self.minimum = minimum
        self._until: dict[tuple[int, int], float] = {}  # (delivery, channel) -> time.monotonic() to resume

    def left(self, delivery_id: int, channel: int) -> float:
        """Seconds the delivery's messages of ``channel`` are still paused (0: not paused)."""
        until = self._until.get((delivery_id, channel))
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._until[delivery_id, channel]
        return max(0.0, left)

    def note(self, delivery_id: int, platform: str, results: Sequence[SendResult]) -> None:
        waits = [
            r.error.retry_after or 0.0 for r in results if r.error is not None and r.error.kind is ErrorKind.THROTTLED
        ]
        if not waits or len(waits) < THROTTLED_SHARE * len(results):
            return
        pause = max(*waits, self.minimum)
        channel = int(Channel.IOS if platform == "ios" else Channel.ANDROID)
        self._until[delivery_id, channel] = time.monotonic() + pause
        log.warning(
            "delivery %s: %s of %s %s messages throttled; no more %s sends for %.0f s",
            delivery_id,
            len(waits),
            len(results),
            platform,
            platform,
            pause,
        )

    def keep_only(self, delivery_ids: Iterable[int]) -> None:
        """Forget the pauses of deliveries not running any more."""
        running = set(delivery_ids)
        for key in [key for key in self._until if key[0] not in running]:
            del self._until[key]
