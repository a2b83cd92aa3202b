"""What a log export reads of rows written just before it or while it runs: nothing waits that the
store can vouch for, rows that must wait are counted in the summary, and none is ever skipped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from store.clock import stamp
from store.codes import BroadLogStatus
from store.models import BroadLog, Delivery, Profile
from sync.peers.platform import PlatformPeer
from tests.conftest import Keys, runtime_of
from tests.push import test_engine
from tests.sync.export.conftest import ids, records, run_job
from tests.values import fcm_token

world = test_engine.world


def exported_broadlogs(app: Flask, peer: PlatformPeer) -> set[int]:
    return {int(r["_experience"]["campaign"]["broadlogID"]) for r in records(app, peer, "broadlog")}


def final_linked_broadlogs(app: Flask, delivery_id: int) -> set[int]:
    with runtime_of(app).sessions() as session:
        rows = session.scalars(select(BroadLog).where(BroadLog.delivery_id == delivery_id)).all()
    return {r.id for r in rows if r.profile_id is not None and r.status != BroadLogStatus.PENDING}


def test_sync_logs_right_after_a_delivery_exports_its_rows(
    app: Flask, client: FlaskClient, keys: Keys, peer: PlatformPeer, provisioned: Any, world: dict[str, Any]
) -> None:
    """On SQLite with the default settings: no settle window, every final row of the delivery goes."""
    delivery = test_engine.create(client, keys, world["ids"]["id"])
    test_engine.drive(world["engine"], delivery["id"])
    run = run_job(app, "logs")
    assert run.status == "succeeded", run.error
    expected = final_linked_broadlogs(app, delivery["id"])
    assert expected and exported_broadlogs(app, peer) == expected
    summary = next(item for item in run.summary["details"] if item["name"] == "broadlog")
    assert "waiting" not in summary["details"]


@pytest.fixture
def settle_window(settings_overrides: dict[str, Any]) -> None:
    """A 600 s settle window (set before the app is made: see usefixtures)."""
    settings_overrides["sync_export_settle_seconds"] = 600


@pytest.mark.usefixtures("settle_window")
def test_rows_inside_the_settle_window_wait_and_the_run_says_until_when(
    app: Flask,
    client: FlaskClient,
    keys: Keys,
    peer: PlatformPeer,
    provisioned: Any,
    world: dict[str, Any],
    runner: Any,
) -> None:
    delivery = test_engine.create(client, keys, world["ids"]["id"])
    test_engine.drive(world["engine"], delivery["id"])
    result = runner.invoke(args=["sync", "logs", "--stream", "broadlog"])
    assert result.exit_code == 0, result.output
    line = next(text for text in result.output.splitlines() if " broadlog:" in text)
    with runtime_of(app).sessions() as session:
        finals = session.execute(
            select(BroadLog.event_date).where(
                BroadLog.delivery_id == delivery["id"], BroadLog.status != BroadLogStatus.PENDING
            )
        ).scalars()
        stamps = list(finals)
    until = (max(stamps) + timedelta(seconds=600)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert line.startswith("done     broadlog: 0 rows, 0 sent"), line
    assert f"; {len(stamps)} newer rows wait for the next run (the settle window of 600 s, until {until})" in line
    assert exported_broadlogs(app, peer) == set()


def test_a_transaction_still_open_holds_back_what_was_stamped_after_it_began(
    app: Flask, peer: PlatformPeer, provisioned: Any, world: dict[str, Any], database_url: str
) -> None:
    """PostgreSQL: a row committed after an older, still open transaction began waits for it, so
    the row that transaction writes (with an older timestamp) is not skipped."""
    if not database_url.startswith("postgres"):
        pytest.skip("SQLite serialises writers: no transaction can be open beside a committed newer one")
    rt = runtime_of(app)
    with rt.sessions.begin() as session:
        delivery = Delivery(app_id=world["ids"]["id"], name="Open", message={}, target={}, platforms=["android"])
        session.add(delivery)
        session.flush()
        delivery_id = delivery.id
        profile_id = session.scalar(select(Profile.id).where(Profile.external_id == test_engine.ALICE))

    def row(session: Any, n: int) -> BroadLog:
        message = BroadLog(
            delivery_id=delivery_id,
            profile_id=profile_id,
            channel=42,
            address=fcm_token(f"open-transaction-{n}"),
            status=int(BroadLogStatus.SENT),
            attempts=1,
            event_date=stamp(session),
        )
        session.add(message)
        session.flush()
        return message

    slow = rt.sessions()
    try:
        slow.begin()
        older = row(slow, 1)  # stamped now, committed last
        with rt.sessions.begin() as session:
            newer = row(session, 2).id
        first = run_job(app, "logs", streams=["broadlog"])
        assert first.status == "succeeded", first.error
        details = next(item for item in first.summary["details"] if item["name"] == "broadlog")["details"]
        assert details["waiting"] >= 1 and details["waiting_for"].startswith("a transaction open since"), details
        assert newer not in exported_broadlogs(app, peer)
        slow.commit()
    finally:
        slow.close()  # rolls back when the test failed, so the teardown is not blocked by its locks
    second = run_job(app, "logs", streams=["broadlog"], force=True)
    assert second.status == "succeeded", second.error
    sent = ids(records(app, peer, "broadlog"))
    assert len(sent) == len(set(sent))  # each once
    assert {older.id, newer} <= exported_broadlogs(app, peer)
