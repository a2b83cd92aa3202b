"""The delivery engine: claim a batch of broadLog ids, build their pushes, send, record outcomes.

The unit of work is a batch of Pending broadLog rows of one delivery, claimed atomically with a
lease (``UPDATE ... WHERE id IN (SELECT ... LIMIT n [FOR UPDATE SKIP LOCKED]) RETURNING id``), so
any number of workers, in-process or distributed, can share a delivery without sending a message
twice. A row whose lease expired while it was still Pending was in flight when its worker died:
it is sent again and counted in ``resent_after_crash``; the window is one batch per worker.

Outcomes (docs/protocols.md §4): success -> Sent with the provider's id; token gone or invalid -> Failed
Hard / User unknown and quarantined; sender mismatch -> Failed Soft / User unknown and counted
toward quarantine; payload refused -> Failed Ignored / Refused; throttling, 5xx, timeouts, lost
connections and auth failures -> retried with exponential back-off, jitter and Retry-After while
the delivery is valid, then Failed Soft / Unreachable (Refused for auth).

A platform whose batch sent nothing because the app's credentials were refused (missing,
undecryptable, refused by the provider) is recorded as stalled (:mod:`push.stalls`): the
delivery's ``error`` says why while it keeps retrying, ``/readyz`` reports it, and a delivery that
ends with a stall and nothing sent is failed rather than completed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy.orm import Session, sessionmaker

from core.metrics import AUTH_REFUSALS, MESSAGES, PROVIDER_LATENCY
from domain import deliveries, delivery_status, quarantine
from domain.analysis import analyse
from domain.messages import Unsendable
from domain.personalisation import LookupTables
from push import stalls
from push.build import Builder
from push.providers.base import ErrorKind, Provider, PushError, PushMessage, SendResult
from push.throttling import Pauses
from store.clock import stamp
from store.codes import DeliveryStatus, FailureReason, FailureType
from store.db import engine_of
from store.models import AppPlatform, Delivery
from store.queries import broadlog
from store.queries import deliveries as delivery_rows
from store.queries.broadlog import LoadedProfile, LoadedSubscription
from store.types import utcnow

log = logging.getLogger("pushgate.engine")
#: How long a worker reuses a running delivery's row and its app's parts between batches.
CONTEXT_SECONDS = 2.0


@dataclass(frozen=True)
class EngineSettings:
    #: Signs each push's tracking ids (domain.tracking.signature); the gateway's tracking key.
    tracking_key: bytes
    batch_size: int = 500
    lease: timedelta = timedelta(seconds=30)
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    max_attempts: int = 10
    quarantine: quarantine.Policy = field(default_factory=quarantine.Policy)


ProviderFor = Callable[[AppPlatform], Provider]


class Engine:
    """Runs deliveries. Database work happens in threads so the event loop keeps sending."""

    def __init__(self, sessions: sessionmaker[Session], providers: ProviderFor, settings: EngineSettings) -> None:
        self.sessions = sessions
        self.providers = providers
        self.settings = settings
        self._bind = engine_of(sessions)
        self._builders: dict[int, Builder] = {}
        self._contexts: dict[int, tuple[Delivery, dict[str, AppPlatform], float]] = {}
        self.pauses = Pauses(minimum=settings.backoff_base)

    # -- starting and finishing ------------------------------------------------------------------

    def start_due(self, now: datetime | None = None) -> list[int]:
        """Analyse every delivery that is due; returns the ids now running."""
        now = now or utcnow()
        started = []
        with self.sessions() as session:
            for delivery in delivery_rows.scheduled(session):
                if deliveries.due(delivery, now) and self._start(session, delivery, now):
                    started.append(delivery.id)
        return started

    def start(self, delivery_id: int, now: datetime | None = None) -> bool:
        """Analyse this one delivery if it is scheduled and due; True when this call started it."""
        now = now or utcnow()
        with self.sessions() as session:
            delivery = session.get(Delivery, delivery_id)
            if delivery is None or delivery.status != DeliveryStatus.SCHEDULED or not deliveries.due(delivery, now):
                return False
            return self._start(session, delivery, now)

    @staticmethod
    def _start(session: Session, delivery: Delivery, now: datetime) -> bool:
        if not delivery_status.start(session, delivery.id, now):
            return False  # another worker took it
        session.refresh(delivery)
        targeted = analyse(session, delivery)
        session.commit()
        log.info("delivery %s started: %s messages targeted", delivery.id, targeted)
        return True

    def running(self) -> list[int]:
        """The running deliveries' ids. What this engine keeps per delivery (compiled templates,
        lookup caches) is dropped for the others: another worker may have finished or cancelled
        them, and a long-lived worker must not keep every delivery it ever sent."""
        with self._bind.connect() as connection:
            rows = delivery_rows.by_status(connection, [DeliveryStatus.RUNNING])
        return self._keep_only([delivery_id for delivery_id, _status in rows])

    def poll(self, now: datetime | None = None) -> list[int]:
        """A worker's tick in one query when nothing is scheduled (the usual case, every
        PUSHGATE_WORKER_POLL_SECONDS in every serving process, idle or not): :meth:`start_due`
        only when some delivery is scheduled, then the running deliveries' ids as :meth:`running`."""
        with self._bind.connect() as connection:
            rows = delivery_rows.by_status(connection, delivery_status.ACTIVE)
        if any(status == DeliveryStatus.SCHEDULED for _, status in rows):
            self.start_due(now)
            return self.running()
        return self._keep_only([delivery_id for delivery_id, status in rows if status == DeliveryStatus.RUNNING])

    def pacing(self, delivery_id: int) -> tuple[float | None, list[str]]:
        """The delivery's rate per second (None: unpaced) and platforms."""
        with self._bind.connect() as connection:
            return delivery_rows.pacing(connection, delivery_id)

    def queue_depth(self) -> int:
        """Pending messages of every running delivery."""
        with self._bind.connect() as connection:
            return broadlog.pending_count(connection)

    def stalled(self) -> int:
        """Running deliveries with a stalled platform (:mod:`push.stalls`)."""
        with self.sessions() as session:
            return delivery_status.stalled_count(session)

    def _keep_only(self, ids: list[int]) -> list[int]:
        self.pauses.keep_only(ids)
        for cache in (self._builders, self._contexts):
            for delivery_id in set(cache) - set(ids):
                cache.pop(delivery_id, None)
        return ids

    def finish_if_done(self, delivery_id: int) -> bool:
        """Mark the delivery completed when nothing is Pending; True when it is over."""
        with self.sessions.begin() as session:
            delivery = session.get(Delivery, delivery_id)
            if delivery is None or delivery.status != DeliveryStatus.RUNNING:
                return True
            if broadlog.any_pending(session.connection(), delivery_id):
                return False
            status, error = delivery_status.finish(session, delivery_id, utcnow())
            self._builders.pop(delivery_id, None)
            self._contexts.pop(delivery_id, None)
            if status is DeliveryStatus.FAILED:
                log.error("delivery %s failed: %s", delivery_id, error)
            else:
                log.info("delivery %s completed%s", delivery_id, f"; {error}" if error else "")
            return True

    def next_retry_in(self, delivery_id: int) -> float | None:
        """Seconds until the earliest Pending row may be tried; None when none is Pending."""
        with self._bind.connect() as connection:
            due = broadlog.next_due(connection, delivery_id)
        return None if due is None else max(0.0, (due - utcnow()).total_seconds())

    # -- one batch -------------------------------------------------------------------------------

    def claim(self, delivery_id: int, limit: int, channel: int | None = None) -> list[int]:
        """Lease up to ``limit`` sendable Pending rows of the delivery (of one channel, 41 iOS or 42
        Android, when given); returns their ids. With a channel the claim is a seek on the index
        (delivery_id, status, channel, id); without one the delivery's Pending rows are sorted by
        id, so the worker always names the channel."""
        with self.sessions.begin() as session:
            return broadlog.claim(session.connection(), delivery_id, limit, channel, utcnow(), self.settings.lease)

    def load(self, delivery_id: int, ids: list[int]) -> tuple[Delivery, list[Row]]:
        """The delivery and, per claimed row, what building and recording its push reads
        (:func:`store.queries.broadlog.load`)."""
        with self.sessions() as session:
            delivery, parts = self._delivery_context(session, delivery_id)
            rows = broadlog.load(session.connection(), ids)
        loaded = []
        for broadlog_id, attempts, subscription, profile in rows:
            loaded.append(Row(broadlog_id, attempts, subscription, profile, parts.get(subscription.platform)))
        return delivery, loaded

    def claim_and_load(
        self, delivery_id: int, limit: int, channel: int | None = None
    ) -> tuple[list[int], Delivery, list[Row]] | None:
        """:meth:`claim` then :meth:`load` in one trip to a database thread; None when nothing is due."""
        ids = self.claim(delivery_id, limit, channel)
        return (ids, *self.load(delivery_id, ids)) if ids else None

    def _delivery_context(self, session: Session, delivery_id: int) -> tuple[Delivery, dict[str, AppPlatform]]:
        """The delivery and its app's platform parts (detached), re-read at most every
        :data:`CONTEXT_SECONDS`: every batch needs them, and they change rarely (a cancel or a
        credential update is seen within that time)."""
        cached = self._contexts.get(delivery_id)
        now = time.monotonic()
        if cached is not None and now - cached[2] < CONTEXT_SECONDS:
            return cached[0], cached[1]
        found = delivery_rows.with_parts(session, delivery_id)
        assert found is not None  # a delivery with broadLog rows is never deleted
        delivery, parts = found
        session.expunge_all()
        self._contexts[delivery_id] = (delivery, parts, now)
        return delivery, parts

    async def run_batch(self, delivery_id: int, limit: int | None = None, channel: int | None = None) -> int:
        """Claim, send and record one batch; returns how many messages it handled (0 also while the
        channel is paused after throttling: see :mod:`push.throttling`)."""
        if channel is not None and self.pauses.left(delivery_id, channel) > 0:
            return 0
        claimed = await asyncio.to_thread(self.claim_and_load, delivery_id, limit or self.settings.batch_size, channel)
        if claimed is None:
            return 0
        ids, delivery, rows = claimed
        builder = self._builders.get(delivery_id)
        if builder is None:
            builder = self._builders[delivery_id] = Builder(
                delivery, self.settings.tracking_key, LookupTables(self.sessions)
            )
        by_part: dict[int, tuple[AppPlatform, list[PushMessage]]] = {}
        build_failures: dict[int, str] = {}
        tables = builder.read_tables
        if tables is None:
            _build(builder, rows, by_part, build_failures)
        else:
            # One query per few hundred table rows the batch reads, off the event loop, instead
            # of one query per row on it: the messages that read a row not cached yet are built
            # again once all such rows are loaded.
            with tables.deferring():
                again = _build(builder, rows, by_part, build_failures, deferring=tables)
            if again:
                await asyncio.to_thread(tables.load_pending)
                _build(builder, again, by_part, build_failures)
        missing = set(ids) - {r.broadlog_id for r in rows}  # subscription deleted since analysis
        for broadlog_id in missing:
            build_failures[broadlog_id] = "the subscription no longer exists"
        # A batch of a delivery to both platforms goes to APNs and FCM at the same time: one
        # after the other, it would take the sum of both providers' times, not the longer one.
        sent = await asyncio.gather(*(self._send(part, messages) for part, messages in by_part.values()))
        for (part, _messages), part_results in zip(by_part.values(), sent, strict=True):
            self.pauses.note(delivery_id, part.platform, part_results)
        results = [result for part_results in sent for result in part_results]
        await asyncio.to_thread(self.record, delivery, rows, results, build_failures)
        return len(ids)

    async def _send(self, part: AppPlatform, messages: list[PushMessage]) -> list[SendResult]:
        provider = self.providers(part)
        started = time.perf_counter()
        results = await provider.send(messages)
        PROVIDER_LATENCY.labels(part.platform).observe(time.perf_counter() - started)
        return results

    # -- outcomes --------------------------------------------------------------------------------

    def _backoff(self, attempts: int, error: PushError) -> float:
        delay = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** max(0, attempts - 1))
        delay = random.uniform(delay / 2, delay)  # noqa: S311 (jitter, not security)
        return max(delay, error.retry_after or 0.0)

    def record(
        self, delivery: Delivery, rows: list[Row], results: list[SendResult], build_failures: dict[int, str]
    ) -> None:
        """Write every outcome of a batch in one transaction (Sent rows in one executemany)."""
        info = {r.broadlog_id: r for r in rows}
        end = deliveries.validity_end(delivery)
        app = str(delivery.app_id)
        sent = [(r.provider_message_id, r.key) for r in results if r.error is None]
        with self.sessions.begin() as session:
            connection = session.connection()
            now = stamp(connection)  # event_date is read by the export in commit order
            if sent:
                broadlog.mark_sent(connection, sent, now)
            for broadlog_id, text in build_failures.items():
                self._final(session, broadlog_id, FailureType.IGNORED, FailureReason.REFUSED, text, now)
                MESSAGES.labels("none", app, "ignored").inc()
            outcomes: Counter[tuple[str, str]] = Counter()
            refusals: Counter[tuple[str, str]] = Counter()
            by_platform: list[tuple[str, PushError | None]] = []
            for result in results:
                row = info[result.key]
                provider = "apns" if row.subscription.platform == "ios" else "fcm"
                by_platform.append((row.subscription.platform, result.error))
                if result.error is None:
                    outcomes[provider, "sent"] += 1
                    continue
                if result.error.kind is ErrorKind.AUTH:
                    refusals[provider, stalls.code(result.error)] += 1
                outcomes[provider, self._failure(session, delivery, row, result.error, end, now)] += 1
            for (provider, outcome), count in outcomes.items():
                MESSAGES.labels(provider, app, outcome).inc(count)
            for (provider, code), count in refusals.items():
                AUTH_REFUSALS.labels(provider, app, code).inc(count)
            stalls_changed = stalls.record(session, delivery.id, stalls.verdicts(by_platform), now)
        if stalls_changed:  # after the outcomes' commit: describing locks the delivery row, as a cancel does first
            with self.sessions.begin() as session:
                delivery_status.describe_stalls(session, delivery.id)

    def _failure(
        self, session: Session, delivery: Delivery, row: Row, error: PushError, end: datetime, now: datetime
    ) -> str:
        broadlog_id, attempts, subscription = row.broadlog_id, row.attempts, row.subscription
        platform = subscription.platform
        text = f"{error.reason}: {error.message}".strip(": ")[:1000]
        kind = error.kind
        if kind in (ErrorKind.TOKEN_GONE, ErrorKind.TOKEN_INVALID):
            self._final(session, broadlog_id, FailureType.HARD, FailureReason.USER_UNKNOWN, text, now)
            quarantine.record_hard_error(
                session,
                app_id=delivery.app_id,
                platform=platform,
                token=subscription.token,
                reason=int(FailureReason.USER_UNKNOWN),
                text=text,
                unregistered_at=error.unregistered_at,
                now=now,
            )
            return "failed_hard"
        if kind is ErrorKind.TOKEN_MISMATCH:
            self._final(session, broadlog_id, FailureType.SOFT, FailureReason.USER_UNKNOWN, text, now)
            quarantine.record_soft_error(
                session,
                app_id=delivery.app_id,
                platform=platform,
                token=subscription.token,
                reason=int(FailureReason.USER_UNKNOWN),
                text=text,
                policy=self.settings.quarantine,
                now=now,
            )
            return "failed_soft"
        if kind is ErrorKind.PAYLOAD_REJECTED:
            self._final(session, broadlog_id, FailureType.IGNORED, FailureReason.REFUSED, text, now)
            return "ignored"
        assert error.retryable, kind  # every final kind is handled above
        delay = self._backoff(attempts, error)
        retry_at = now + timedelta(seconds=delay)
        # A throttled message was not refused: the service asked us to slow down, so max_attempts
        # does not apply to it, and only the delivery's validity bounds how long it waits.
        may_retry = kind is ErrorKind.THROTTLED or attempts < self.settings.max_attempts
        if may_retry and retry_at < end and delivery.status == DeliveryStatus.RUNNING:
            broadlog.retry_later(session.connection(), broadlog_id, retry_at, text, now)
            return "retry"
        reason = FailureReason.REFUSED if kind is ErrorKind.AUTH else FailureReason.UNREACHABLE
        self._final(session, broadlog_id, FailureType.SOFT, reason, text, now)
        return "failed_soft"

    @staticmethod
    def _final(
        session: Session, broadlog_id: int, failure_type: FailureType, reason: FailureReason, text: str, now: datetime
    ) -> None:
        broadlog.mark_failed(session.connection(), broadlog_id, failure_type, reason, text, now)


def _build(
    builder: Builder,
    rows: list[Row],
    by_part: dict[int, tuple[AppPlatform, list[PushMessage]]],
    failures: dict[int, str],
    *,
    deferring: LookupTables | None = None,
) -> list[Row]:
    """Build each row's push into ``by_part`` (by app platform part), or its failure into
    ``failures``. With ``deferring`` (inside its :meth:`LookupTables.deferring`), a row whose
    templates read a table row not cached yet is returned instead, to be built again."""
    again: list[Row] = []
    for row in rows:
        broadlog_id, _attempts, subscription, profile, part = row
        if part is None:
            failures[broadlog_id] = f"the app has no {subscription.platform} part any more"
            continue
        before = deferring.deferred if deferring is not None else 0
        message: PushMessage | None = None
        try:
            message = builder.build(broadlog_id, subscription, profile, part)
        except Unsendable as exc:  # this message cannot go (template, size, ids); anything else is a bug
            problem = str(exc)
        if deferring is not None and deferring.deferred != before:
            again.append(row)  # built without a row not read yet: a failure may be for want of it
        elif message is None:
            failures[broadlog_id] = problem
        else:
            by_part.setdefault(part.id, (part, []))[1].append(message)
    return again


class Row(NamedTuple):
    """A claimed broadLog row with what building its push needs."""

    broadlog_id: int
    attempts: int
    subscription: LoadedSubscription
    profile: LoadedProfile | None
    part: AppPlatform | None
