"""A delivery sent by many worker processes through a broker (Celery mode): what one task does.

Nothing here knows the broker; ``pushgate_celery`` wraps each function in a task. A delivery is
sent by at most ``in_flight`` chains of batch steps (PUSHGATE_CELERY_BATCHES_IN_FLIGHT): the start
(:func:`start`) analyses it and seeds the chains, and each step (:func:`step`) sends one batch
with :meth:`push.engine.Engine.run_batch` (the claim, lease and conditional records of the
in-process worker) and answers the step that replaces it. So the broker holds at most
``in_flight`` messages of a delivery whatever its size, and a delivery to 1,000,000 devices is
produced batch by batch as workers drain it.

A step whose task is given again after its worker died simply claims again: the claim takes only
Pending rows whose lease expired, so a row already Sent is never sent again, and the rows the
dead worker held are resent once their lease lapses, counted in ``resent_after_crash``. The
delivery is completed by :meth:`Engine.finish_if_done` (a conditional move: exactly once, however
many steps find nothing left at the same time).

``rate_per_second`` holds across every worker through :class:`SharedRate` (one Redis counter per
delivery and second); without Redis each batch is only cut to the rate and the pace is not bounded
across workers (the README says so).
"""

from __future__ import annotations

import math
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core import logs
from push.engine import Engine
from push.loop import LoopThread
from push.worker import CHANNELS, PLATFORM_ORDER

if TYPE_CHECKING:
    from redis import Redis

#: A step that found nothing claimable while rows remain Pending (retries not due yet, or rows
#: leased by other workers) comes back after the next row is due, within these bounds: often
#: enough to see a lapsed lease soon, rarely enough not to spin on the broker.
MIN_WAIT, MAX_WAIT = 0.2, 5.0


@dataclass(frozen=True)
class Next:
    """The step that replaces the one just run: which platform it starts on, and when."""

    platform: str | None
    countdown: float = 0.0


class SharedRate:
    """``rate_per_second`` of a delivery across every process: fixed windows counted in Redis.

    A window lasts one second (or ``1 / rate`` for rates under one a second) and admits
    ``rate x window`` messages; a batch that would overflow it waits for the next window.
    """

    def __init__(self, redis: Redis, prefix: str = "pushgate:rate") -> None:
        self.redis = redis
        self.prefix = prefix

    def wait(self, delivery_id: int, count: int, rate: float) -> float:
        """Seconds to wait before sending ``count`` messages; 0 when they may go now (and are counted)."""
        window = max(1.0, 1.0 / rate)
        allowed = max(1, int(rate * window))
        now = time.time()
        slot = math.floor(now / window)
        key = f"{self.prefix}:{delivery_id}:{slot}"
        pipe = self.redis.pipeline()
        pipe.incrby(key, count)
        pipe.expire(key, math.ceil(window) + 1)
        used = int(pipe.execute()[0])
        if used <= allowed:
            return 0.0
        self.redis.decrby(key, count)  # not taken: what it counted stays for a batch that fits
        return (slot + 1) * window - now

    def give_back(self, delivery_id: int, unused: int, rate: float) -> None:
        """Return ``unused`` of an allowance taken in the current window (a batch that claimed
        fewer messages than it was allowed, or none): otherwise that part of the second is lost
        and the delivery runs slower than its rate."""
        if unused <= 0:
            return
        window = max(1.0, 1.0 / rate)
        key = f"{self.prefix}:{delivery_id}:{math.floor(time.time() / window)}"
        if self.redis.exists(key):  # a window already over has nothing to give back to
            self.redis.decrby(key, unused)


def platforms_of(engine: Engine, delivery_id: int) -> list[str | None]:
    """The delivery's platforms in the order they are sent (:data:`push.worker.PLATFORM_ORDER`)."""
    _rate, platforms = engine.pacing(delivery_id)
    return [p for p in PLATFORM_ORDER if p in platforms] or [None]


def start(engine: Engine, delivery_id: int, in_flight: int) -> list[Next]:
    """Analyse the delivery if it is due and no one started it; the steps that send it (none if
    it was not started here)."""
    if not engine.start(delivery_id):
        return []
    return seed(engine, delivery_id, in_flight)


def seed(engine: Engine, delivery_id: int, in_flight: int) -> list[Next]:
    """``in_flight`` steps of a delivery just started, on its first platform."""
    first = platforms_of(engine, delivery_id)[0]
    return [Next(first) for _ in range(in_flight)]


def step(
    engine: Engine, loop: LoopThread, delivery_id: int, platform: str | None, rate: SharedRate | None = None
) -> Next | None:
    """Send one batch of the delivery, starting on ``platform`` and moving on to the next
    platform when it has nothing claimable; the step to enqueue next, or None when the delivery
    is over (completed here or elsewhere, or cancelled)."""
    pace, platforms = engine.pacing(delivery_id)
    order: list[str | None] = [p for p in PLATFORM_ORDER if p in platforms] or [None]
    size = engine.settings.batch_size
    limit = max(1, min(size, int(pace))) if pace else size
    position = order.index(platform) if platform in order else 0
    for current in order[position:]:
        if rate is not None and pace:
            paced = rate.wait(delivery_id, limit, pace)
            if paced > 0:
                return Next(current, paced)
        channel = CHANNELS[current] if current is not None else None
        handled = loop.run(_named(delivery_id, engine.run_batch(delivery_id, limit=limit, channel=channel)))
        if rate is not None and pace:
            rate.give_back(delivery_id, limit - handled, pace)
        if handled:
            return Next(current)
    if engine.finish_if_done(delivery_id):
        return None
    wait = engine.next_retry_in(delivery_id)
    return Next(order[0], min(max(wait or 0.0, MIN_WAIT), MAX_WAIT))


async def _named(delivery_id: int, batch: Coroutine[Any, Any, int]) -> int:
    """``batch`` with the delivery's id in its log lines (the loop's tasks have their own context)."""
    logs.bind(delivery_id=delivery_id)
    return await batch
