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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.errors import Conflict
from store.codes import DeliveryStatus
from store.models import Delivery

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
