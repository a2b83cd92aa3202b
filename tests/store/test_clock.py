"""store.clock: a stamp can never be overtaken by one that commits earlier, and the horizon says
how far an export may read. Runs on the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from flask import Flask

from store.clock import horizon, stamp
from store.types import utcnow
from tests.conftest import runtime_of


def test_a_stamp_taken_while_another_writer_holds_the_database_is_later_than_its_commit(app: Flask) -> None:
    """SQLite: the second writer's stamp waits for the write lock, so it follows the first one's
    commit; a clock read before the lock would come before it (and an export could skip the row)."""
    rt = runtime_of(app)
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL writers run side by side; the horizon test covers them")
    first = rt.sessions()
    first.begin()
    first_stamp = stamp(first)
    asking = threading.Event()
    second_stamp: list[datetime] = []

    def second_writer() -> None:
        with rt.sessions.begin() as session:
            asking.set()
            second_stamp.append(stamp(session))

    thread = threading.Thread(target=second_writer)
    thread.start()
    asking.wait(5)
    thread.join(0.2)  # the second writer is now waiting for the lock, not stamping
    assert not second_stamp
    committed_at = utcnow()
    first.commit()
    first.close()
    thread.join(10)
    assert second_stamp and first_stamp < committed_at < second_stamp[0]


def test_the_horizon_is_now_less_the_margin_when_no_transaction_is_open(app: Flask) -> None:
    rt = runtime_of(app)
    with rt.engine.connect() as conn:
        before = utcnow()
        limit = horizon(conn, timedelta(seconds=30))
        after = utcnow()
    assert before - timedelta(seconds=31) < limit.until <= after - timedelta(seconds=30) + timedelta(seconds=1)
    assert limit.delay == timedelta(seconds=30) and limit.held_by == "the settle window of 30 s"
    with rt.engine.connect() as conn:
        nothing = horizon(conn, timedelta(0))
    assert nothing.held_by is None and nothing.delay is None


def test_an_open_transaction_holds_the_horizon_at_its_start_on_postgresql(app: Flask) -> None:
    rt = runtime_of(app)
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite: no transaction can be open beside a newer commit")
    writer = rt.engine.connect()
    try:
        began = writer.exec_driver_sql("SELECT now()").scalar()  # also begins the transaction
        stamped = stamp(writer)
        with rt.engine.connect() as reader:
            limit = horizon(reader, timedelta(seconds=2))
        assert limit.until == began - timedelta(seconds=2) and limit.until < stamped
        assert limit.held_by is not None and limit.held_by.startswith("a transaction open since")
    finally:
        writer.rollback()
        writer.close()
    with rt.engine.connect() as reader:
        assert horizon(reader, timedelta(0)).until > began
