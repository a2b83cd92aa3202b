"""Delivery statuses: every allowed move works, every other one leaves the row as it is and is
refused with a clear error; the API and the database keep the same strings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, get_args

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.errors import Conflict
from domain import delivery_status
from domain.delivery_status import CANCEL, COMPLETE, FAIL, FINAL, MOVES, START, TRANSITIONS, Move
from gateway.api.schemas import DeliveryOut
from store.codes import DeliveryStatus
from store.models import Delivery
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app

S = DeliveryStatus
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=utcnow().tzinfo)

#: The whole table, written out: a change to the rules must change this test too.
EXPECTED = {
    S.SCHEDULED: {S.RUNNING, S.CANCELLED, S.FAILED},
    S.RUNNING: {S.COMPLETED, S.CANCELLED, S.FAILED},
    S.COMPLETED: set(),
    S.CANCELLED: set(),
    S.FAILED: set(),
}


def run(move: Move) -> Callable[[Session, int], bool]:
    """Call the public function of ``move`` with its arguments."""
    if move is FAIL:
        return lambda session, delivery_id: delivery_status.fail(session, delivery_id, "no credentials", NOW)
    function: Callable[[Session, int, datetime], bool] = getattr(delivery_status, move.name)
    return lambda session, delivery_id: function(session, delivery_id, NOW)


def test_values_are_the_strings_the_api_and_the_database_use() -> None:
    assert [s.value for s in DeliveryStatus] == ["scheduled", "running", "completed", "cancelled", "failed"]
    assert set(get_args(DeliveryOut.model_fields["status"].annotation)) == {s.value for s in DeliveryStatus}
    assert {s: set(targets) for s, targets in TRANSITIONS.items()} == EXPECTED
    assert {S.COMPLETED, S.CANCELLED, S.FAILED} == FINAL


@pytest.mark.parametrize("current", list(DeliveryStatus))
@pytest.mark.parametrize("move", MOVES, ids=lambda m: m.name)
def test_a_move_happens_only_from_its_allowed_statuses(app: Flask, current: DeliveryStatus, move: Move) -> None:
    ids = make_app(app)
    sessions = runtime_of(app).sessions
    with sessions.begin() as session:
        delivery = Delivery(
            app_id=ids["id"], name="d", message={}, target={"all": True}, platforms=["ios"], status=current.value
        )
        session.add(delivery)
        session.flush()
        delivery_id = delivery.id
    allowed = move.target in EXPECTED[current]
    assert delivery_status.allowed(current, move.target) is allowed
    with sessions.begin() as session:
        assert run(move)(session, delivery_id) is allowed
    with sessions() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        after: dict[str, Any] = {"status": row.status, "error": row.error}
        stamped = {"started_at": row.started_at, "ended_at": row.ended_at}
    if not allowed:  # a no-op: nothing written
        assert after == {"status": current.value, "error": None}
        assert stamped == {"started_at": None, "ended_at": None}
        refused = delivery_status.refusal(move, current)
        assert isinstance(refused, Conflict) and refused.code == move.refused_code
        assert refused.message == f"a {current.value} delivery cannot be {move.past}"
        return
    assert after["status"] == move.target.value
    assert after["error"] == ("no credentials" if move is FAIL else None)
    stamp = stamped["started_at" if move is START else "ended_at"]
    assert stamp is not None and abs(stamp - NOW) < timedelta(seconds=1)


def test_only_one_of_two_racing_moves_wins(app: Flask) -> None:
    """A worker completing a delivery a marketer cancelled a moment before leaves it cancelled."""
    ids = make_app(app)
    sessions = runtime_of(app).sessions
    with sessions.begin() as session:
        delivery = Delivery(app_id=ids["id"], name="d", message={}, target={"all": True}, platforms=["ios"])
        session.add(delivery)
        session.flush()
        delivery_id = delivery.id
        assert delivery.status == S.SCHEDULED  # the column's default
    with sessions.begin() as session:
        assert delivery_status.start(session, delivery_id, NOW)
        assert not delivery_status.start(session, delivery_id, NOW)  # a second worker: nothing to do
    with sessions.begin() as session:
        assert delivery_status.cancel(session, delivery_id, NOW)
    with sessions.begin() as session:
        assert not delivery_status.complete(session, delivery_id, NOW)
        assert session.scalar(select(Delivery.status).where(Delivery.id == delivery_id)) == "cancelled"


def test_the_cancel_endpoint_refuses_a_finished_delivery_by_name(app: Flask, client: Any, keys: Any) -> None:
    ids = make_app(app)
    sessions = runtime_of(app).sessions
    with sessions.begin() as session:
        delivery = Delivery(app_id=ids["id"], name="d", message={}, target={"all": True}, platforms=["ios"])
        session.add(delivery)
        session.flush()
        delivery_id = delivery.id
    cancelled = client.post(f"/api/v1/deliveries/{delivery_id}/cancel", headers=keys.marketer)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert cancelled.json["ended_at"] is not None
    again = client.post(f"/api/v1/deliveries/{delivery_id}/cancel", headers=keys.marketer)
    assert again.status_code == 409
    assert again.json == {
        "error": "not_cancellable",
        "message": "a cancelled delivery cannot be cancelled",
        "request_id": again.headers["X-Request-ID"],
    }
    with sessions.begin() as session:  # completed by a worker: also refused
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(status=S.COMPLETED.value))
    completed = client.post(f"/api/v1/deliveries/{delivery_id}/cancel", headers=keys.marketer)
    assert completed.status_code == 409
    assert completed.json == {
        "error": "not_cancellable",
        "message": "a completed delivery cannot be cancelled",
        "request_id": completed.headers["X-Request-ID"],
    }


def test_every_move_has_a_function_and_a_distinct_refusal_code() -> None:
    assert [m.name for m in MOVES] == ["start", "complete", "cancel", "fail"]
    assert all(callable(getattr(delivery_status, m.name)) for m in MOVES)
    assert len({m.refused_code for m in MOVES}) == len(MOVES)
    assert CANCEL.refused_code == "not_cancellable"  # the API's code, unchanged
    assert COMPLETE.sources == {S.RUNNING}
