"""A delivery's status and the only ways it may change.

====================  ====================  ===========================================
move                  from                  to (and what it stamps)
====================  ====================  ===========================================
:func:`start`         scheduled             running (``started_at``)
:func:`complete`      running               completed (``ended_at``)
:func:`cancel`        scheduled, running    cancelled (``ended_at``)
:func:`fail`          scheduled, running    failed (``ended_at``, ``error``)
====================  ====================  ===========================================

completed, cancelled and failed are final. Each move is one conditional ``UPDATE ... WHERE id = ?
AND status IN (...)``, so two workers (or a worker and a cancel request) racing for the same
delivery cannot both move it: the one that loses gets False and the row is left as the winner
wrote it. A caller that must tell its client why the move did not happen (the cancel endpoint)
raises :func:`refusal`.

**Stalls.** A platform of a running delivery whose last batch was refused as a whole for the app's
credentials (none, undecryptable, or refused by the provider) is *stalled*: a ``delivery_stall``
row (:func:`note_stall`), gone again with the first message of that platform that goes out
(``store.queries.deliveries.clear_stalls``, on the send path). The delivery stays running, since
its messages are retried while they may still go (an admin may fix the credentials meanwhile),
and its ``error`` says why in words (:func:`describe_stalls`); ``/readyz`` lists the stalls of
running deliveries (:func:`stalls`). When nothing is left to send, :func:`finish` completes the
delivery, or fails it when a stall remained and not one message was sent; either way ``error``
keeps what the stall was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict
from store.codes import BroadLogStatus, DeliveryStatus
from store.models import BroadLog, Delivery, DeliveryStall

SCHEDULED, RUNNING = DeliveryStatus.SCHEDULED, DeliveryStatus.RUNNING
#: The statuses a worker looks at: due to start, or sending.
ACTIVE: tuple[DeliveryStatus, ...] = (SCHEDULED, RUNNING)


@dataclass(frozen=True)
class Move:
    """One allowed change of status: from any of ``sources`` to ``target``."""

    name: str
    past: str  # "a completed delivery cannot be <past>"
    sources: frozenset[DeliveryStatus]
    target: DeliveryStatus
    refused_code: str  # the Conflict code when a client asks for it from another status


START = Move("start", "started", frozenset({SCHEDULED}), RUNNING, "not_startable")
COMPLETE = Move("complete", "completed", frozenset({RUNNING}), DeliveryStatus.COMPLETED, "not_completable")
CANCEL = Move("cancel", "cancelled", frozenset(ACTIVE), DeliveryStatus.CANCELLED, "not_cancellable")
FAIL = Move("fail", "failed", frozenset(ACTIVE), DeliveryStatus.FAILED, "not_failable")
MOVES: tuple[Move, ...] = (START, COMPLETE, CANCEL, FAIL)

#: status -> the statuses it may become (empty for a final status).
TRANSITIONS: Mapping[DeliveryStatus, frozenset[DeliveryStatus]] = {
    status: frozenset(move.target for move in MOVES if status in move.sources) for status in DeliveryStatus
}
FINAL: frozenset[DeliveryStatus] = frozenset(status for status, targets in TRANSITIONS.items() if not targets)


def allowed(current: str, target: str) -> bool:
    """Whether a delivery in ``current`` may become ``target``."""
    return target in TRANSITIONS.get(DeliveryStatus(current), frozenset())


def refusal(move: Move, current: str) -> Conflict:
    """The error for a client asking for ``move`` on a delivery in ``current``:
    ``a completed delivery cannot be cancelled`` (409 ``not_cancellable``)."""
    return Conflict(f"a {current} delivery cannot be {move.past}", code=move.refused_code)


def perform(session: Session, delivery_id: int, move: Move, **values: Any) -> bool:
    """Apply ``move`` to the delivery if its status allows it, setting ``values`` too, in one
    conditional UPDATE; True when the row moved. The session's copy of the row is updated."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status.in_([s.value for s in move.sources]))
        .values(status=move.target.value, **values)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def start(session: Session, delivery_id: int, now: datetime) -> bool:
    """scheduled -> running; False when it is not scheduled (another worker started it first)."""
    return perform(session, delivery_id, START, started_at=now)


def complete(session: Session, delivery_id: int, now: datetime) -> bool:
    """running -> completed; False when it is not running (cancelled meanwhile, or done already)."""
    return perform(session, delivery_id, COMPLETE, ended_at=now)


def cancel(session: Session, delivery_id: int, now: datetime, *, cancelled_by: str | None = None) -> bool:
    """scheduled or running -> cancelled, recording who did; False when it is over already."""
    return perform(session, delivery_id, CANCEL, ended_at=now, cancelled_by=cancelled_by)


def fail(session: Session, delivery_id: int, error: str, now: datetime) -> bool:
    """scheduled or running -> failed, with the reason in ``error``; False when it is over already."""
    return perform(session, delivery_id, FAIL, ended_at=now, error=error)


# -- stalls ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stall:
    """A platform of a running delivery whose messages cannot go out, and since when."""

    delivery_id: int
    platform: str
    reason: str
    since: datetime


def note_stall(session: Session, delivery_id: int, platform: str, reason: str, now: datetime) -> bool:
    """Record that ``platform``'s messages of the delivery cannot go out, for ``reason``; True when
    that is news (no stall was recorded, or for another reason): call :func:`describe_stalls` then."""
    row = session.get(DeliveryStall, (delivery_id, platform))
    if row is None:
        try:
            with session.begin_nested():  # another worker may record the same stall at the same time
                session.add(
                    DeliveryStall(delivery_id=delivery_id, platform=platform, reason=reason, since=now, updated_at=now)
                )
                session.flush()
            return True
        except IntegrityError:
            row = session.get(DeliveryStall, (delivery_id, platform), populate_existing=True)
            if row is None:  # cleared again since: whoever cleared it saw a message go out
                return False
    news = row.reason != reason
    row.reason, row.updated_at = reason, now
    return news


def describe_stalls(session: Session, delivery_id: int) -> str | None:
    """Write the running delivery's ``error`` from its stalls (None when it has none); returns it.
    The delivery row is written first so that two workers describing the same delivery at once
    take turns (each then reads the stalls the other committed) instead of overwriting each other."""
    touched = session.execute(
        update(Delivery).where(Delivery.id == delivery_id, Delivery.status == RUNNING).values(error=Delivery.error)
    )
    if not touched.rowcount:  # type: ignore[attr-defined]
        return None  # not running any more: its error is the final one
    stalled = _stalls_of(session, delivery_id)
    error = None
    if stalled:
        each = "; ".join(
            f"{s.platform} messages cannot be sent: {s.reason}, since {s.since:%Y-%m-%d %H:%M:%S} UTC" for s in stalled
        )
        error = f"{each}; they are retried until their attempts run out or the delivery expires"
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(error=error))
    return error


def finish(session: Session, delivery_id: int, now: datetime) -> tuple[DeliveryStatus | None, str | None]:
    """running -> completed, or failed when a stall remained and not one message was sent; the
    stalls become the final ``error``. Returns the new status (None when it was not running) and
    the error it was given."""
    stalled = _stalls_of(session, delivery_id)
    if not stalled:
        return (DeliveryStatus.COMPLETED if complete(session, delivery_id, now) else None), None
    session.execute(delete(DeliveryStall).where(DeliveryStall.delivery_id == delivery_id))
    if not _any_sent(session, delivery_id):
        error = "no message could be sent: " + "; ".join(f"{s.platform}: {s.reason}" for s in stalled)
        return (DeliveryStatus.FAILED if fail(session, delivery_id, error, now) else None), error
    error = "; ".join(f"{s.platform} messages could not be sent: {s.reason}" for s in stalled)
    moved = perform(session, delivery_id, COMPLETE, ended_at=now, error=error)
    return (DeliveryStatus.COMPLETED if moved else None), error


def stalled_count(session: Session) -> int:
    """How many running deliveries have a stalled platform."""
    count = session.scalar(
        select(func.count(func.distinct(DeliveryStall.delivery_id)))
        .select_from(DeliveryStall)
        .join(Delivery)
        .where(Delivery.status == RUNNING)
    )
    return int(count or 0)


def stalls(session: Session, limit: int = 20) -> list[Stall]:
    """Up to ``limit`` stalls of running deliveries, oldest first."""
    rows = session.scalars(
        select(DeliveryStall)
        .join(Delivery)
        .where(Delivery.status == RUNNING)
        .order_by(DeliveryStall.since, DeliveryStall.delivery_id, DeliveryStall.platform)
        .limit(limit)
    )
    return [_stall(row) for row in rows]


def _stalls_of(session: Session, delivery_id: int) -> list[Stall]:
    rows = session.scalars(
        select(DeliveryStall).where(DeliveryStall.delivery_id == delivery_id).order_by(DeliveryStall.platform)
    )
    return [_stall(row) for row in rows]


def _stall(row: DeliveryStall) -> Stall:
    return Stall(row.delivery_id, row.platform, row.reason, row.since)


def _any_sent(session: Session, delivery_id: int) -> bool:
    sent = select(BroadLog.id).where(BroadLog.delivery_id == delivery_id, BroadLog.status == BroadLogStatus.SENT)
    return session.scalar(sent.limit(1)) is not None
