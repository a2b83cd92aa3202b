"""The one way a test waits for something another thread or process does: poll a predicate until it
holds or a deadline passes. A test that can be told (an event, a line on a pipe) waits on that instead."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    message: str | Callable[[], str] = "the condition did not hold",
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value, and return that
    value; fail with ``message`` (a string, or a callable giving one from the state at the end) and
    the last value seen when ``timeout`` seconds pass first. The predicate is always called at least
    once, and once more at the deadline, so a slow machine never fails a condition that holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {timeout:g} s; last value: {value!r})")
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
