"""The measured step of ``bench/scale.py``: one delivery to every subscription of the instance, sent
by the worker processes given, timed from its enqueue to its completion and verified.

:func:`run_phase` creates the delivery in the database as the API does
(``domain.deliveries.create_delivery``; the clock starts just before) and, in Celery mode, enqueues
its start on the broker as a web process does; then it polls the delivery's status every 50 ms
until ``completed`` and, every second, samples the broker's push queue depth and the delivery's
Pending broadLog rows. The phase is verified: the delivery completed, every broadLog row Sent, and
each emulator's inbox holding exactly one accepted request per token of its platform (emptied
after). A timeout, a dead worker or a delivery that ended otherwise raises ``RuntimeError``; a
count that does not match marks the phase not ok (the run then exits 1)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.scale_fixture import Broker
from bench.send_fixture import Emulators, Instance, check_inbox
from bench.send_gateway import Gateway
from bench.send_phases import MESSAGE, broadlog_tally

POLL_SECONDS = 0.05
SAMPLE_SECONDS = 1.0


@dataclass
class Sample:
    at: float  # seconds since the enqueue
    queue: int | None  # push queue depth (None: no broker)
    pending: int | None  # None: not analysed yet (no broadLog rows)


@dataclass
class Result:
    mode: str  # "celery-1", "celery-2", "embedded"
    round: int
    messages: int
    elapsed: float
    cpu: float  # the worker processes' CPU seconds over the phase
    ok: bool
    detail: str
    started_after: float  # seconds until the delivery left "scheduled" (analysed)
    samples: list[Sample] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed


def run_phase(
    mode: str,
    round_no: int,
    instance: Instance,
    emulators: Emulators,
    gateway: Gateway,
    cpu: Callable[[], float],
    broker: Broker | None,
    platforms: list[str],
    timeout: float,
) -> Result:
    from sqlalchemy import func, select

    from domain.deliveries import DeliveryCreate, create_delivery
    from push import payloads
    from store import db as store_db
    from store.codes import BroadLogStatus
    from store.models import BroadLog, Delivery

    expected = sum(len(instance.tokens[p]) for p in platforms)
    engine = store_db.make_engine(instance.database_url)
    sessions = store_db.make_session_factory(engine)
    depth = broker.depth_reader() if broker is not None else None
    samples: list[Sample] = []
    pending_rows = select(func.count()).select_from(BroadLog).where(BroadLog.status == int(BroadLogStatus.PENDING))
    try:
        data = DeliveryCreate.model_validate(
            {
                "app_id": instance.app_id,
                "name": f"scale {mode} round {round_no}",
                "message": MESSAGE,
                "target": {"all": True},
                "platforms": platforms,
            }
        )
        cpu_before = cpu()
        started = time.perf_counter()
        with sessions.begin() as session:
            delivery, _ = create_delivery(session, data, payloads=payloads)
            delivery_id = delivery.id
        if broker is not None:
            broker.enqueue_start(delivery_id)
        started_after = 0.0
        next_sample = started
        while True:
            now = time.perf_counter()
            with engine.connect() as conn:
                status = conn.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
                if now >= next_sample:
                    pending = None
                    if status != "scheduled":
                        pending = conn.scalar(pending_rows.where(BroadLog.delivery_id == delivery_id)) or 0
                    samples.append(Sample(now - started, depth() if depth is not None else None, pending))
                    next_sample += SAMPLE_SECONDS
            if status != "scheduled" and not started_after:
                started_after = time.perf_counter() - started
            if status == "completed":
                break
            if status in ("failed", "cancelled"):
                raise RuntimeError(f"{mode}: delivery {delivery_id} ended {status}")
            if now - started > timeout:
                raise RuntimeError(f"{mode}: delivery {delivery_id} not completed within {timeout:.0f}s")
            gateway.check_alive()
            time.sleep(POLL_SECONDS)
        elapsed = time.perf_counter() - started
        used = cpu() - cpu_before
        with engine.connect() as conn:
            by_status, resent = broadlog_tally(conn, delivery_id)
    finally:
        if depth is not None:
            depth.close()
        engine.dispose()
    sent = by_status.get(int(BroadLogStatus.SENT), 0)
    ok = sent == expected and sum(by_status.values()) == expected
    inboxes = []
    for platform_name in platforms:
        count = len(instance.tokens[platform_name])
        inbox = check_inbox(emulators, platform_name, count, instance.tokens[platform_name], clear=False)
        ok = ok and inbox.exact and inbox.accepted == count
        inboxes.append(
            f"{platform_name} inbox {inbox.records} requests, {inbox.accepted} accepted, "
            f"{inbox.distinct} distinct tokens, {inbox.missing} missing"
        )
    emulators.clear()
    detail = (
        f"delivery {delivery_id} completed: {sent}/{expected} Sent, broadLog by status {by_status}, "
        f"resent_after_crash {resent}; " + "; ".join(inboxes)
    )
    return Result(mode, round_no, expected, elapsed, used, ok, detail, started_after, samples)


def series(samples: list[Sample], width: int = 40) -> tuple[str, str]:
    """The queue depths and the Pending counts (in thousands; ``-``: no broker, or not analysed
    yet) as two compact lines; runs longer than ``width`` seconds show every k-th sample (said in
    the line)."""
    step = max(1, -(-len(samples) // width))
    shown = samples[::step]
    every = f"every {step} s" if step > 1 else "every s"
    queue = " ".join("-" if s.queue is None else str(s.queue) for s in shown)
    pending = " ".join(
        "-" if s.pending is None else f"{s.pending / 1000:.1f}" if s.pending >= 100 else str(s.pending) for s in shown
    )
    return f"queue ({every}): {queue}", f"pending k ({every}): {pending}"
