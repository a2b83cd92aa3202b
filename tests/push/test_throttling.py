"""push.throttling: which throttled batches pause a platform of a delivery, and for how long."""

from __future__ import annotations

from push.providers.base import ErrorKind, PushError, SendResult
from push.throttling import Pauses

QUOTA = PushError(ErrorKind.THROTTLED, "QUOTA_EXCEEDED", 429, retry_after=60.0)
BUSY_NO_WAIT = PushError(ErrorKind.THROTTLED, "TooManyRequests", 429)
GONE = PushError(ErrorKind.TOKEN_GONE, "UNREGISTERED", 404)


def results(*errors: PushError | None) -> list[SendResult]:
    return [SendResult(key, error=error) for key, error in enumerate(errors)]


def test_a_mostly_throttled_batch_pauses_its_platform_for_the_longest_wait() -> None:
    pauses = Pauses(minimum=1.0)

    pauses.note(7, "android", results(QUOTA, QUOTA, None))

    assert 59 < pauses.left(7, 42) <= 60
    assert pauses.left(7, 41) == 0 and pauses.left(8, 42) == 0


def test_a_few_throttled_messages_pause_nothing() -> None:
    pauses = Pauses(minimum=1.0)

    pauses.note(7, "android", results(QUOTA, None, None, GONE))

    assert pauses.left(7, 42) == 0


def test_a_throttled_batch_without_retry_after_pauses_for_the_minimum() -> None:
    pauses = Pauses(minimum=2.5)

    pauses.note(7, "ios", results(BUSY_NO_WAIT))

    assert 2 < pauses.left(7, 41) <= 2.5


def test_an_ended_pause_and_a_finished_delivery_are_forgotten() -> None:
    pauses = Pauses(minimum=0.0)
    pauses.note(7, "ios", results(PushError(ErrorKind.THROTTLED, "TooManyRequests", 429, retry_after=0.0)))
    pauses.note(8, "android", results(QUOTA))

    assert pauses.left(7, 41) == 0
    pauses.keep_only([9])
    assert pauses.left(8, 42) == 0
