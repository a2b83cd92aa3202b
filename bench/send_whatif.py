"""Candidate speed-ups of the delivery worker, applied in memory by ``bench/send_profile.py --whatif``.

Each is the smallest change to one method of ``push/engine.py`` or ``push/providers/*.py`` that
tests one idea; the method bodies are otherwise the project's own, copied as they were when this
was written. Nothing here is used by the gateway: it exists so that a suggested patch can be
measured (A/B, same process layout, same emulators) before anyone edits the real code.

``load-eager``
    ``Engine.load`` without the second LEFT JOIN of ``profile``: ``Subscription.profile`` is
    ``lazy="joined"``, so selecting ``Subscription`` and ``Profile`` joins ``profile`` twice and
    decodes every profile column (JSON ``attributes`` included) twice per row. ``contains_eager``
    fills the relationship from the explicit join instead. (The working tree now does the same with
    ``noload(Subscription.profile)``; this stays for A/B against older checkouts.)
``load-core``
    ``Engine.load`` as one Core SELECT of just the columns building and recording a push read
    (``SUBSCRIPTION_FIELDS``, token, id, ``additional_params``; ``PROFILE_FIELDS``, ``attributes``),
    returned as light attribute objects (``push.templates`` takes "anything with the same
    attributes"), instead of ORM instances of every column of ``Subscription`` and ``Profile``.
``apns-timeout``
    ``ApnsProvider._send_one`` with ``asyncio.timeout`` (3.11) instead of ``asyncio.wait_for``, which
    on 3.11 wraps every request in one more Task.
``apns-workers``
    ``ApnsProvider.send`` with a fixed set of sender coroutines over the batch (as the FCM direct
    path does) instead of ``asyncio.gather`` of one Task per message.
``apns-h2-lean``
    Each APNs connection's ``H2Connection`` built with ``validate_outbound_headers=False`` and
    ``normalize_outbound_headers=False``: the provider writes its own headers (lower-case, checked in
    ``_request_for``), so h2's per-header generator chain is redundant, and without normalisation the
    ``authorization`` header (the same provider JWT for up to an hour) is no longer forced to a
    never-indexed literal: HPACK indexes it once per connection instead of Huffman-coding some 200
    bytes into every request.
``poll-100ms``
    The worker's tick every 0.1 s instead of 0.5 s (``Worker(poll_interval=...)``, not a setting
    today): a new delivery waits for the next tick before it is analysed and sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

WHATIFS = ("load-eager", "load-core", "apns-timeout", "apns-workers", "apns-h2-lean", "poll-100ms")


def apply(names: list[str]) -> None:
    for name in names:
        PATCHES[name]()


def _load_eager() -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import contains_eager

    from push import engine
    from store.models import AppPlatform, BroadLog, Delivery, Profile, Subscription

    def load(self: Any, delivery_id: int, ids: list[int]) -> tuple[Any, list[Any]]:
        with self.sessions() as session:
            delivery = session.get(Delivery, delivery_id)
            assert delivery is not None
            rows = session.execute(
                select(BroadLog.id, BroadLog.attempts, Subscription)
                .join(Subscription, Subscription.id == BroadLog.subscription_id)
                .outerjoin(Profile, Profile.id == Subscription.profile_id)
                .options(contains_eager(Subscription.profile))
                .where(BroadLog.id.in_(ids))
            ).all()
            parts = {
                p.platform: p for p in session.scalars(select(AppPlatform).where(AppPlatform.app_id == delivery.app_id))
            }
            session.expunge_all()
        return delivery, [engine.Row(r[0], r[1], r[2], r[2].profile, parts.get(r[2].platform)) for r in rows]

    engine.Engine.load = load  # type: ignore[method-assign]


def _load_core() -> None:
    from types import SimpleNamespace

    from sqlalchemy import select

    from push import engine
    from push.templates import PROFILE_FIELDS, SUBSCRIPTION_FIELDS
    from store.models import AppPlatform, BroadLog, Delivery, Profile, Subscription

    sub_names = ("id", "token", "profile_id", "additional_params", *SUBSCRIPTION_FIELDS)
    pro_names = ("id", "attributes", *PROFILE_FIELDS)
    columns = [
        BroadLog.id,
        BroadLog.attempts,
        *(getattr(Subscription, name).label(f"s_{name}") for name in sub_names),
        *(getattr(Profile, name).label(f"p_{name}") for name in pro_names),
    ]
    query = (
        select(*columns)
        .join(Subscription, Subscription.id == BroadLog.subscription_id)
        .outerjoin(Profile, Profile.id == Subscription.profile_id)
    )

    def load(self: Any, delivery_id: int, ids: list[int]) -> tuple[Any, list[Any]]:
        with self.sessions() as session:
            delivery = session.get(Delivery, delivery_id)
            assert delivery is not None
            rows = session.execute(query.where(BroadLog.id.in_(ids))).all()
            parts = {
                p.platform: p for p in session.scalars(select(AppPlatform).where(AppPlatform.app_id == delivery.app_id))
            }
            session.expunge_all()
        loaded = []
        for row in rows:
            values = row._mapping
            subscription = SimpleNamespace(**{name: values[f"s_{name}"] for name in sub_names})
            profile = (
                SimpleNamespace(**{name: values[f"p_{name}"] for name in pro_names})
                if values["p_id"] is not None
                else None
            )
            loaded.append(engine.Row(row[0], row[1], subscription, profile, parts.get(subscription.platform)))  # type: ignore[arg-type]
        return delivery, loaded

    engine.Engine.load = load  # type: ignore[method-assign]


def _apns_timeout() -> None:
    from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
    from aioapns.exceptions import ConnectionError as ApnsConnectionError
    from h2.exceptions import ProtocolError

    from push.providers import apns
    from push.providers.base import ErrorKind, PushError, SendResult

    async def _send_one(self: Any, client: Any, message: Any) -> Any:
        request = apns._request_for(message)
        if isinstance(request, PushError):
            return SendResult(message.key, error=request)
        assert self._semaphore is not None
        async with self._semaphore:
            try:
                async with asyncio.timeout(self.timeout):
                    result = await client.send_notification(request)
            except TimeoutError:
                error = PushError(ErrorKind.TIMEOUT, "timeout", message=f"no answer within {self.timeout:g} s")
                return SendResult(message.key, error=error)
            except (apns._InFlightLost, ConnectionClosed, ApnsConnectionError, MaxAttemptsExceeded) as exc:
                return SendResult(message.key, error=apns._connection_error(exc))
            except (ProtocolError, OSError) as exc:
                return SendResult(message.key, error=apns._connection_error(exc))
        if result.is_successful:
            return SendResult(message.key, provider_message_id=result.notification_id)
        status = int(result.status) if result.status.isdigit() else 0
        reason = result.description or f"HTTP {result.status}"
        return SendResult(message.key, error=apns.error_for(status, reason, result.timestamp))

    apns.ApnsProvider._send_one = _send_one  # type: ignore[method-assign]


def _apns_workers(width: int = 100) -> None:
    from push.providers import apns

    async def send(self: Any, messages: Any) -> list[Any]:
        if self._closed:
            raise RuntimeError("ApnsProvider.send after close()")
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise RuntimeError("ApnsProvider is bound to the event loop of its first send")
        client = self._ensure_client()
        pending: Iterator[Any] = iter(messages)
        results: list[Any] = []

        async def sender() -> None:
            for message in pending:
                results.append(await self._send_one(client, message))

        await asyncio.gather(*(sender() for _ in range(min(width, len(messages)))))
        return results

    apns.ApnsProvider.send = send  # type: ignore[method-assign]


def _apns_h2_lean() -> None:
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    from push.providers import apns

    original_init = apns._Connection.__init__
    config = H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.conn = H2Connection(config=config)  # before connection_made sends the preface

    apns._Connection.__init__ = __init__  # type: ignore[method-assign]


def _poll_100ms() -> None:
    from push import worker

    original_init = worker.Worker.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.poll_interval = 0.1

    worker.Worker.__init__ = __init__  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {
    "load-eager": _load_eager,
    "load-core": _load_core,
    "apns-timeout": _apns_timeout,
    "apns-workers": _apns_workers,
    "apns-h2-lean": _apns_h2_lean,
    "poll-100ms": _poll_100ms,
}
