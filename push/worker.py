"""The in-process worker: the embedded default's executor (no broker needed).

One daemon thread runs one long-lived asyncio loop (providers bind their HTTP/2 connections to
it). Each tick starts the deliveries that are due and keeps one task per running delivery; that
task runs ``concurrency`` batch loops side by side, paced by the delivery's ``rate_per_second``
(a leaky bucket from aiolimiter covering both platforms together), until nothing is Pending. For
a delivery to both platforms the loops send iOS first, then Android (:data:`PLATFORM_ORDER`),
unless a slow provider makes them move on sooner.
Celery mode's executor (:mod:`push.distributed`) runs the same :class:`push.engine.Engine` batches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from aiolimiter import AsyncLimiter
from sqlalchemy.exc import SQLAlchemyError

from core import logs
from core.metrics import DELIVERIES_STALLED, QUEUE_DEPTH
from push.engine import Engine
from store.codes import Channel
from store.db import database_error

log = logging.getLogger("pushgate.worker")
#: How often the queue-depth and stalled-deliveries gauges are refreshed.
QUEUE_DEPTH_SECONDS = 5.0
CHANNELS = {"ios": int(Channel.IOS), "android": int(Channel.ANDROID)}
#: The order a delivery to both platforms sends them in: one platform, then the other, rather than
#: both side by side, so that the devices of the first get the push sooner (side by side each half
#: takes the whole delivery's time) and the delivery as a whole ends no later (the worker's CPU, or
#: its in-flight window, is shared either way). iOS first: an APNs message costs the worker a little
#: less than an FCM one (bench/send.py: about 0.19 against 0.21 ms).
PLATFORM_ORDER = ("ios", "android")
#: A batch slower than this moves its loop on to the next platform (a provider timing out or
#: throttling must not hold the other platform back).
SLOW_BATCH_SECONDS = 2.0
#: A failing tick that fails the same way again is logged again only after this long: an
#: unreachable database must not fill the log with the same line every poll.
REPEAT_LOG_SECONDS = 60.0


class Worker:
    def __init__(
        self,
        make_engine: Callable[[], Engine],
        *,
        poll_interval: float = 0.5,
        concurrency: int = 4,
        on_stop: Callable[[], Any] | None = None,
    ) -> None:
        self._make_engine = make_engine
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self._on_stop = on_stop
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._woken: asyncio.Event | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._depth_measured_at = float("-inf")
        self._last_failure: tuple[str, float] = ("", float("-inf"))
        self.engine: Engine | None = None

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="pushgate-worker", daemon=True)
        self._thread.start()
        ready.wait(10)

    def _report(self, reason: str) -> None:
        """Log a failed tick as one line, once a minute while it keeps failing the same way."""
        now = time.monotonic()
        last, at = self._last_failure
        if reason != last or now - at >= REPEAT_LOG_SECONDS:
            log.error("worker tick failed, %s; retrying every %.1f s", reason, self.poll_interval)
            self._last_failure = (reason, now)

    def wake(self) -> None:
        """Tick now instead of at the next poll (a delivery was just created in this process)."""
        if self._loop is not None and self._woken is not None:
            self._loop.call_soon_threadsafe(self._woken.set)

    def stop(self, timeout: float = 10) -> None:
        if self._loop is not None and self._stopping is not None and self._woken is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._loop.call_soon_threadsafe(self._woken.set)  # ends the pause now
        if self._thread is not None:
            self._thread.join(timeout)

    def _main(self, ready: threading.Event) -> None:
        asyncio.run(self._run(ready))

    async def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()
        self.engine = self._make_engine()
        ready.set()
        try:
            while not self._stopping.is_set():
                try:
                    await self.tick()
                except SQLAlchemyError as exc:
                    self._report(f"the database failed: {database_error(exc)}")
                except Exception:
                    log.exception("worker tick failed; retrying")
                else:
                    self._last_failure = ("", float("-inf"))
                await self._pause()
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            if self._on_stop is not None:
                result = self._on_stop()
                if asyncio.iscoroutine(result):
                    await result

    async def _pause(self) -> None:
        """Wait for the next poll, a wake-up or the stop, whichever comes first. (One event for
        both and a timeout, not a task per event: idle, this runs every poll in every process.)"""
        assert self._woken is not None
        try:
            async with asyncio.timeout(self.poll_interval):
                await self._woken.wait()
        except TimeoutError:
            pass
        self._woken.clear()

    async def tick(self) -> None:
        engine = self.engine
        assert engine is not None
        for delivery_id in await asyncio.to_thread(engine.poll):
            task = self._tasks.get(delivery_id)
            if task is None or task.done():
                self._tasks[delivery_id] = asyncio.create_task(self._drive(delivery_id))
        now = time.monotonic()
        if now - self._depth_measured_at >= QUEUE_DEPTH_SECONDS:
            # A count over every Pending row of the running deliveries: not on every tick, which
            # comes every PUSHGATE_WORKER_POLL_SECONDS while those deliveries are being sent.
            self._depth_measured_at = now
            QUEUE_DEPTH.set(await asyncio.to_thread(self._queue_depth))

    def _queue_depth(self) -> int:
        assert self.engine is not None
        DELIVERIES_STALLED.set(self.engine.stalled())
        return self.engine.queue_depth()

    async def _drive(self, delivery_id: int) -> None:
        logs.bind(delivery_id=delivery_id)  # this task's own context: its log lines name the delivery
        engine = self.engine
        assert engine is not None
        rate, platforms = await asyncio.to_thread(engine.pacing, delivery_id)
        limiter = _limiter(rate)
        engine_batch = max(1, min(engine.settings.batch_size, int(rate))) if rate else engine.settings.batch_size
        # Every loop claims one platform at a time, in PLATFORM_ORDER: a claim of one channel is a
        # seek on the claim index (delivery, status, channel, id), where a claim of any would sort
        # the Pending rows. A loop moves on when its platform has nothing due, or early when a
        # batch took longer than SLOW_BATCH_SECONDS (a slow or failing provider must not hold the
        # other back); the next pass comes back for what is left. The in-flight window stays batch
        # size x concurrency.
        channels: list[int | None] = [CHANNELS[p] for p in PLATFORM_ORDER if p in platforms] or [None]

        async def loop() -> None:
            position = 0
            while position < len(channels):
                if limiter is not None:
                    await limiter.acquire(min(engine_batch, limiter.max_rate))
                started = time.monotonic()
                handled = await engine.run_batch(delivery_id, limit=engine_batch, channel=channels[position])
                slow = time.monotonic() - started > SLOW_BATCH_SECONDS
                if handled == 0 or (slow and position + 1 < len(channels)):
                    position += 1

        try:
            while True:
                await asyncio.gather(*(loop() for _ in range(self.concurrency)))
                if await asyncio.to_thread(engine.finish_if_done, delivery_id):
                    return
                wait = await asyncio.to_thread(engine.next_retry_in, delivery_id)
                await asyncio.sleep(min(max(wait or 0.0, 0.05), self.poll_interval * 4))
        except Exception:
            log.exception("delivery %s: batch loop failed; the next tick resumes it", delivery_id)


def _limiter(rate: float | None) -> AsyncLimiter | None:
    if not rate:
        return None
    if rate >= 1:
        return AsyncLimiter(rate, 1.0)
    return AsyncLimiter(1, 1.0 / rate)
