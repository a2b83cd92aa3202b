"""One long-lived asyncio event loop on a daemon thread, for code that is not async itself.

A Celery worker process runs its tasks in plain threads (the pool's), but the providers keep
HTTP/2 connections and provider tokens bound to the loop that opened them. So each worker process
starts one :class:`LoopThread` and every task submits its coroutines to it
(:meth:`LoopThread.run`): the connections outlive the task that opened them, and a batch pays a
hand-off between threads (measured in tests/celery/test_loop.py) instead of a reconnect.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "pushgate-loop") -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LoopThread:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        self.loop = loop
        return self

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result (its exception is raised here)."""
        assert self.loop is not None, "start() the loop first"
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self, closing: Callable[[], Coroutine[Any, Any, None]] | None = None, timeout: float = 10) -> None:
        """Run ``closing`` (closing the providers' connections) on the loop, then end it."""
        loop, self.loop = self.loop, None
        if loop is None:
            return
        if closing is not None:
            asyncio.run_coroutine_threadsafe(closing(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        loop.close()
