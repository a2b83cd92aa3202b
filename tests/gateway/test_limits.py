"""gateway.limits.MemoryWindows counts as the limits library's fixed windows in memory do, without
the expiry thread that library's memory store starts again and again."""

from __future__ import annotations

import threading

import pytest
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from gateway import limits as limits_module
from gateway.limits import MemoryWindows, window_counter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(limits_module.time, "time", clock)
    return clock


def test_a_window_allows_its_amount_then_refuses_until_it_ends(clock: Clock) -> None:
    counter, limit = MemoryWindows(), parse("3/minute")
    assert [counter.hit(limit, "registration", "10.0.0.1") for _ in range(4)] == [True, True, True, False]
    stats = counter.get_window_stats(limit, "registration", "10.0.0.1")
    assert stats.reset_time == clock.now + 60 and stats.remaining == 0
    assert counter.hit(limit, "registration", "10.0.0.2")  # another client, another window
    assert counter.hit(limit, "tracking", "10.0.0.1")  # another family too

    clock.now += 59.9
    assert not counter.hit(limit, "registration", "10.0.0.1")  # refused hits count: the window stays spent
    clock.now += 0.1
    assert counter.hit(limit, "registration", "10.0.0.1")  # a new window from this hit
    assert counter.get_window_stats(limit, "registration", "10.0.0.1") == (clock.now + 60, 2)


def test_an_unknown_or_ended_window_is_whole() -> None:
    counter, limit = MemoryWindows(), parse("2/second")
    stats = counter.get_window_stats(limit, "api", "key:1")
    assert stats.remaining == 2


def test_ended_windows_are_swept(clock: Clock) -> None:
    counter, limit = MemoryWindows(), parse("5/second")
    for n in range(100):
        counter.hit(limit, "registration", f"10.0.{n}.1")
    clock.now += MemoryWindows.SWEEP_SECONDS + 1
    counter.hit(limit, "registration", "10.1.0.1")
    assert len(counter._windows) == 1


def test_it_agrees_with_the_library_on_the_same_hits(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    import limits.storage.memory as library_memory

    monkeypatch.setattr(library_memory.time, "time", clock)
    library = FixedWindowRateLimiter(MemoryStorage())
    ours = MemoryWindows()
    limit = parse("4/10 seconds")
    for step in range(60):
        who = f"client{step % 3}"
        assert ours.hit(limit, "scope", who) == library.hit(limit, "scope", who), step
        clock.now += 0.7


def test_concurrent_hits_are_all_counted() -> None:
    counter, limit = MemoryWindows(), parse("1000000/hour")
    threads = [threading.Thread(target=lambda: [counter.hit(limit, "s", "one") for _ in range(2000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.get_window_stats(limit, "s", "one").remaining == 1_000_000 - 8000


def test_redis_urls_keep_the_library_counter() -> None:
    assert isinstance(window_counter(""), MemoryWindows)
    assert isinstance(window_counter("redis://127.0.0.1:6379/0"), FixedWindowRateLimiter)
