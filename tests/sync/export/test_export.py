"""Provisioning and the log export against the local Experience Platform peer, over real HTTP."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from domain.tracking import TrackingCall, signature
from domain.tracking import record as record_tracking
from store.codes import BroadLogStatus
from store.models import App, BroadLog, Delivery, Profile, Subscription, SyncReject, SyncState
from store.queries import state as sync_state
from store.types import utcnow
from sync import xdm
from sync.peers.platform import PlatformPeer
from sync.platform.batch import BatchIngestion, BatchStillRunning
from sync.xdm import records as xdm_records
from tests.conftest import Keys, runtime_of
from tests.gateway.api.helpers import finished_run
from tests.push import test_engine
from tests.sync.export.conftest import ids, records, run_job, state
from tests.values import APNS_TOKEN, ECID, FCM_TOKEN, crm_id, ecid

world = test_engine.world
STREAMS = list(xdm.STREAMS)


def seed(app: Flask, count: int, *, anonymous: int = 0) -> list[int]:
    """``count`` Sent broadLog rows of one delivery to a linked Android subscription (an hour old),
    then ``anonymous`` more to a subscription with no profile and no ECID; returns the row ids."""
    old = utcnow() - timedelta(hours=1)
    with runtime_of(app).sessions.begin() as session:
        shop = App(name="Shop")
        session.add(shop)
        session.flush()
        profile = Profile(external_id=crm_id(1), push_consent="y")
        session.add(profile)
        session.flush()
        linked = Subscription(
            app_id=shop.id,
            platform="android",
            token=FCM_TOKEN,
            sdk="edge",
            push_provider="fcm",
            profile_id=profile.id,
            ecid=ECID,
        )
        loose = Subscription(
            app_id=shop.id, platform="ios", token=APNS_TOKEN, sdk="campaign-classic", push_provider="apns"
        )
        session.add_all([linked, loose])
        session.flush()
        delivery = Delivery(
            app_id=shop.id, name="Spring", message={}, target={}, platforms=["android"], status="completed"
        )
        session.add(delivery)
        session.flush()
        rows = [
            BroadLog(
                delivery_id=delivery.id,
                subscription_id=(linked if n < count else loose).id,
                profile_id=profile.id if n < count else None,
                channel=42 if n < count else 41,
                address=(linked if n < count else loose).token,
                status=int(BroadLogStatus.SENT),
                provider_message_id=f"pm-{n}",
                attempts=1,
                created_at=old,
                event_date=old + timedelta(milliseconds=n),
            )
            for n in range(count + anonymous)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def expected_ids(row_ids: list[int]) -> set[str]:
    return {xdm_records.record_id("broadlog", row_id, int(BroadLogStatus.SENT)) for row_id in row_ids}


def summary_of(run: Any, stream: str) -> dict[str, Any]:
    return next(item for item in run.summary["details"] if item["name"] == stream)


# -- provisioning -------------------------------------------------------------------------------


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    config = tmp_path / "sync.json"
    config.write_text(
        json.dumps(
            {
                "governance": {
                    "labels": {"datasets": {"pushgate broadLog": ["C2", "C5"], "pushgate push preferences": ["C4"]}}
                },
                "export": {"identityNamespace": "CRMID"},
            }
        )
    )
    return {**settings_overrides, "sync_config": config}


def test_provisioning_twice_creates_each_schema_and_dataset_once(
    app: Flask, peer: PlatformPeer, sleeps: list[float]
) -> None:
    first = run_job(app, "provision")
    assert first.status == "succeeded", first.error
    actions = Counter((o["kind"], o["action"]) for item in first.summary["details"] for o in item["details"]["objects"])
    assert actions == {
        ("fieldgroup", "created"): 4,
        ("schema", "created"): 4,
        ("descriptor", "created"): 4,
        ("profile", "updated"): 4,
        ("dataset", "created"): 4,
        ("labels", "updated"): 2,
    }
    second = run_job(app, "provision")
    assert second.status == "succeeded", second.error
    again = Counter((o["kind"], o["action"]) for item in second.summary["details"] for o in item["details"]["objects"])
    assert again == {
        ("fieldgroup", "found"): 4,
        ("schema", "found"): 4,
        ("descriptor", "found"): 4,
        ("dataset", "found"): 4,
    }
    held = peer.state.summary()
    assert len(held["schemas"]) == 4 and len(held["datasets"]) == 4
    with peer.state.lock:
        datasets = dict(peer.state.datasets)
        schemas = {key: value for key, value in peer.state.schemas.items()}
        labels = {key: value["labels"] for key, value in peer.state.labels.items()}
    for stream in STREAMS:
        dataset_id = state(app, f"dataset:{stream}")
        assert dataset_id in datasets
        assert datasets[dataset_id]["tags"]["unifiedProfile"] == ["enabled:true"]
        schema_id = state(app, f"schema:{stream}")
        schema = next(s for s in schemas.values() if s["$id"] == schema_id)
        assert "union" in schema["meta:immutableTags"]
    assert labels[state(app, "dataset:broadlog")] == ["C2", "C5"]
    assert labels[state(app, "dataset:preferences")] == ["C4"]


# -- a real delivery ----------------------------------------------------------------------------


def test_a_real_delivery_arrives_as_valid_xdm_with_stable_ids(
    app: Flask, client: FlaskClient, keys: Keys, peer: PlatformPeer, provisioned: Any, world: dict[str, Any]
) -> None:
    delivery = test_engine.create(client, keys, world["ids"]["id"])
    test_engine.drive(world["engine"], delivery["id"])
    rt = world["rt"]
    opener = ecid("opener")
    with rt.sessions.begin() as session:
        sent = session.scalars(
            select(BroadLog).where(BroadLog.status == BroadLogStatus.SENT).order_by(BroadLog.id)
        ).first()
        assert sent is not None
        key = rt.tracking_key
        mac = signature(key, sent.id, sent.delivery_id)
        opened = TrackingCall(
            sent.id, sent.delivery_id, "opened", "edge", "pushTracking.applicationOpened", ecid=opener, signature=mac
        )
        assert record_tracking(session, opened, key=key)
        clicked = TrackingCall(sent.id, None, "clicked", "campaign-standard", "2", action_id="buy", signature=mac)
        assert record_tracking(session, clicked, key=key)
        finals = {
            row.id: row for row in session.scalars(select(BroadLog).where(BroadLog.delivery_id == delivery["id"]))
        }
        unlinked = {row_id for row_id, row in finals.items() if row.profile_id is None}
    run = run_job(app, "logs")
    assert run.status == "succeeded", run.error
    broadlog = records(app, peer, "broadlog")
    assert {r["_id"] for r in broadlog} == {
        xdm_records.record_id("broadlog", row_id, row.status)
        for row_id, row in finals.items()
        if row_id not in unlinked
    }
    by_id = {int(r["_experience"]["campaign"]["broadlogID"]): r for r in broadlog}
    feedback = Counter(
        r["_experience"]["customerJourneyManagement"]["messageDeliveryfeedback"]["feedbackStatus"] for r in broadlog
    )
    assert feedback == {"sent": 3, "bounce": 3, "error": 1, "denylist": 1}
    assert all(r["identityMap"]["CRMID"][0]["primary"] for r in broadlog)
    tracking = records(app, peer, "trackinglog")
    assert [
        r["_experience"]["customerJourneyManagement"]["messageInteraction"]["interactionType"] for r in tracking
    ] == [
        "open",
        "click",
    ]
    assert tracking[0]["identityMap"]["ECID"][0]["id"] == opener
    quarantine = records(app, peer, "quarantine")
    assert sorted(r["_pushgatelocal"]["pushgate"]["address"]["token"] for r in quarantine) == sorted(
        test_engine.TOKENS[name] for name in ("bad-1", "gone-1", "mismatch-1")
    )
    preferences = records(app, peer, "preferences")
    assert sorted(
        (r["identityMap"]["CRMID"][0]["id"], r["consents"]["marketing"]["push"]["val"]) for r in preferences
    ) == [
        (test_engine.ALICE, "u"),
        (test_engine.BOB, "n"),
    ]
    tenant = peer.config.tenant_id
    for stream in STREAMS:
        validator = xdm.validator(stream, tenant)
        for record in records(app, peer, stream):
            assert validator.problem(record) is None
        assert peer.records(state(app, f"dataset:{stream}"), failed=True) == []
    assert by_id[sent.id]["_pushgatelocal"]["pushgate"]["broadLog"]["providerMessageId"] == f"pm-{sent.id}"
    # The unlinked subscription's message (no profile, no ECID) is reported, not sent.
    with rt.sessions() as session:
        rejects = session.scalars(select(SyncReject).where(SyncReject.run_id == run.id)).all()
    assert [(r.file, r.line) for r in rejects] == [("broadlog", row_id) for row_id in sorted(unlinked)]
    assert rejects[0].reason.startswith("no identity")
    assert summary_of(run, "broadlog")["rejected"] == len(unlinked)
    # Stable ids: the same rows exported again (watermarks lost) give the same _id values.
    with rt.sessions.begin() as session:
        session.execute(update(SyncState).where(SyncState.stream.like("export:%")).values(watermark=None))
    rerun = run_job(app, "logs", force=True)
    assert rerun.status == "succeeded", rerun.error
    twice = Counter(ids(records(app, peer, "broadlog")))
    assert set(twice.values()) == {2} and set(twice) == {r["_id"] for r in broadlog}


# -- faults and outages -------------------------------------------------------------------------


def test_throttling_outages_and_partial_failures_end_with_each_record_exactly_once(
    app: Flask, peer: PlatformPeer, provisioned: Any, sleeps: list[float]
) -> None:
    row_ids = seed(app, 2500)
    peer.add_fault(path="streaming-batch", status=429, times=2, retry_after=1)
    peer.add_fault(path="streaming-batch", status=503, times=2, retry_after=2)
    peer.add_fault(path="streaming-batch", partial={"every": 3}, times=3)
    run = run_job(app, "logs", streams=["broadlog"])
    assert run.status == "succeeded", run.error
    got = ids(records(app, peer, "broadlog"))
    assert len(got) == len(set(got)) == 2500 and set(got) == expected_ids(row_ids)
    outcome = summary_of(run, "broadlog")
    assert (outcome["rows"], outcome["applied"], outcome["rejected"]) == (2500, 2500, 0)
    assert outcome["details"]["retried"] > 0 and outcome["details"]["mode"] == "streaming"
    assert outcome["details"]["watermark"].endswith(f"|{row_ids[-1]}")
    assert 1.0 in sleeps and 2.0 in sleeps


def test_the_watermark_stays_before_what_the_platform_did_not_take(
    app: Flask, peer: PlatformPeer, provisioned: Any, sleeps: list[float]
) -> None:
    row_ids = seed(app, 1500)
    peer.add_fault(path="streaming-batch", status=503, times=50)
    down = run_job(app, "logs", streams=["broadlog"])
    assert down.status == "failed" and "the next run sends them again" in (down.error or "")
    assert records(app, peer, "broadlog") == [] and state(app, "export:broadlog") is None
    assert summary_of(down, "broadlog")["details"]["unsent"] > 0
    with peer.state.lock:
        peer.state.faults.clear()
    up = run_job(app, "logs", streams=["broadlog"], force=True)
    assert up.status == "succeeded", up.error
    got = ids(records(app, peer, "broadlog"))
    assert len(got) == len(set(got)) and set(got) == expected_ids(row_ids)


def test_a_partial_outage_stops_at_the_first_record_not_taken(
    app: Flask, peer: PlatformPeer, provisioned: Any, sleeps: list[float]
) -> None:
    row_ids = seed(app, 30)
    stubborn = xdm_records.record_id("broadlog", row_ids[10], int(BroadLogStatus.SENT))
    peer.add_fault(path="streaming-batch", partial={"ids": [stubborn]}, times=50)
    run = run_job(app, "logs", streams=["broadlog"])
    assert run.status == "failed"
    assert state(
        app,
        "export:broadlog",
    ).endswith(f"|{row_ids[9]}")  # type: ignore[union-attr]
    with peer.state.lock:
        peer.state.faults.clear()
    assert run_job(app, "logs", streams=["broadlog"], force=True).status == "succeeded"
    got = Counter(ids(records(app, peer, "broadlog")))
    assert set(got) == expected_ids(row_ids)
    # Records after the stubborn one that the Platform took in the same request come again, same _id.
    assert {n for n in got.values()} <= {1, 2} and got[stubborn] == 1


def test_invalid_records_are_reported_and_never_sent(app: Flask, peer: PlatformPeer, provisioned: Any) -> None:
    row_ids = seed(app, 5, anonymous=2)
    with runtime_of(app).sessions.begin() as session:
        session.execute(update(BroadLog).where(BroadLog.id == row_ids[1]).values(provider_message_id=""))
        session.execute(update(BroadLog).where(BroadLog.id == row_ids[2]).values(attempts=-1))
    run = run_job(app, "logs", streams=["broadlog"])
    assert run.status == "succeeded"
    assert len(records(app, peer, "broadlog")) == 4
    with runtime_of(app).sessions() as session:
        rejects = {r.line: r.reason for r in session.scalars(select(SyncReject).where(SyncReject.run_id == run.id))}
    assert sorted(rejects) == [row_ids[2], row_ids[5], row_ids[6]]
    assert rejects[row_ids[2]].startswith("invalid XDM at _pushgatelocal/pushgate/broadLog/attempts")
    assert state(app, "export:broadlog").endswith(f"|{row_ids[-1]}")  # type: ignore[union-attr]


# -- batch ingestion ----------------------------------------------------------------------------


def test_a_large_backlog_goes_through_batch_ingestion(
    small_threshold: dict[str, Any], app: Flask, peer: PlatformPeer, provisioned: Any
) -> None:
    row_ids = seed(app, 300, anonymous=1)
    run = run_job(app, "logs", streams=["broadlog"])
    assert run.status == "succeeded", run.error
    outcome = summary_of(run, "broadlog")
    assert outcome["details"]["mode"] == "batch" and (outcome["applied"], outcome["rejected"]) == (300, 1)
    entries = peer.records(state(app, "dataset:broadlog"))
    assert {e["via"] for e in entries} == {"batch"}
    assert Counter(e["record"]["_id"] for e in entries).most_common(1)[0][1] == 1
    assert {e["record"]["_id"] for e in entries} == expected_ids(row_ids[:300])
    assert state(app, "batch:broadlog") is None
    assert state(app, "export:broadlog").endswith(f"|{row_ids[-1]}")  # type: ignore[union-attr]


def test_a_batch_completed_before_a_crash_is_settled_by_the_next_run(
    small_threshold: dict[str, Any], app: Flask, peer: PlatformPeer, provisioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    row_ids = seed(app, 150)

    def crash(self: BatchIngestion, batch_id: str) -> tuple[str, str]:
        raise BatchStillRunning(f"batch {batch_id} is still staging")

    with monkeypatch.context() as patched:
        patched.setattr(BatchIngestion, "wait", crash)
        first = run_job(app, "logs", streams=["broadlog"])
    assert first.status == "failed" and state(app, "export:broadlog") is None
    marker = state(app, "batch:broadlog")
    assert marker is not None and marker.endswith(f"|{row_ids[-1]}")
    second = run_job(app, "logs", streams=["broadlog"], force=True)
    assert second.status == "succeeded", second.error
    assert summary_of(second, "broadlog")["details"]["resumed_batch"] == marker.split("|")[0]
    got = ids(records(app, peer, "broadlog"))
    assert len(got) == len(set(got)) == 150
    assert state(app, "batch:broadlog") is None


# -- the guardrail, the CLI and the API ---------------------------------------------------------


def test_a_second_run_within_four_hours_is_refused_unless_forced(
    app: Flask, peer: PlatformPeer, provisioned: Any, runner: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seed(app, 3)
    first = runner.invoke(args=["sync", "logs"])
    assert first.exit_code == 0, first.output
    lines = first.output.strip().splitlines()
    assert lines[0].startswith("done     broadlog: 3 rows, 3 sent, 0 rejected, 0 retried, watermark ")
    assert lines[-1].startswith("run ") and "succeeded: 4 streams, 4 rows, 4 sent, 0 rejected" in lines[-1]
    with runtime_of(app).sessions() as session:
        last = session.get(SyncState, "export:broadlog")
        assert last is not None and last.last_run_at is not None
        again_at = (last.last_run_at + timedelta(hours=4)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    calls = len(peer.state.requests)
    refused = runner.invoke(args=["sync", "logs"])
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines()[-1] == (
        f"pushgate: sync logs refused: broadlog, trackinglog, quarantine and preferences may run again at "
        f"{again_at} (every 4 h; --force overrides)"
    )
    assert all(r["category"] == "ims" for r in list(peer.state.requests)[calls:])  # nothing sent
    caplog.set_level(logging.WARNING, logger="pushgate.sync.export")
    forced = runner.invoke(args=["sync", "logs", "--force", "--stream", "broadlog"])
    assert forced.exit_code == 0, forced.output
    assert "done     broadlog: 0 rows" in forced.output and "(streaming, forced)" in forced.output
    assert "--force: broadlog last ran at" in caplog.text
    partly = runner.invoke(args=["sync", "logs"])
    assert partly.exit_code == 1 and "refused  broadlog: may run again at" in partly.output


def test_the_cli_provisions_and_the_api_runs_and_lists_exports(
    app: Flask, client: FlaskClient, keys: Keys, peer: PlatformPeer, sleeps: list[float], runner: Any
) -> None:
    provisioned = runner.invoke(args=["sync", "provision", "--stream", "broadlog"])
    assert provisioned.exit_code == 0, provisioned.output
    lines = provisioned.output.strip().splitlines()
    assert lines[0] == "done     broadlog"
    assert lines[1].startswith(
        "  created  fieldgroup pushgate broadLog details: https://ns.adobe.com/pushgatelocal/mixins/"
    )
    assert lines[-1].endswith("succeeded: 1 streams, 6 objects, 6 created or updated")
    seed(app, 4)
    started = client.post("/api/v1/sync/logs/run", headers=keys.admin, json={"force": True, "streams": ["broadlog"]})
    assert started.status_code == 202, started.json
    body = finished_run(client, keys.admin, started.json["id"], timeout=20)
    assert body["status"] == "succeeded", body
    assert body["summary"]["details"][0]["details"]["watermark"]
    listed = client.get("/api/v1/sync/runs?job=logs", headers=keys.admin).json["items"]
    assert [run["id"] for run in listed] == [started.json["id"]]
    assert len(records(app, peer, "broadlog")) == 4
    refused = client.post("/api/v1/sync/logs/run", headers=keys.admin, json={"streams": ["broadlog"]})
    body = finished_run(client, keys.admin, refused.json["id"], timeout=20)
    assert body["status"] == "refused" and "--force overrides" in body["error"]
    bad = client.post("/api/v1/sync/logs/run", headers=keys.admin, json={"streams": ["everything"]})
    assert bad.status_code == 400


def test_missing_provisioning_and_settings_are_named(app: Flask, peer: PlatformPeer, sleeps: list[float]) -> None:
    run = run_job(app, "logs")
    assert run.status == "failed"
    assert run.error == "no dataset is provisioned for broadlog: run `flask --app wsgi sync provision` first"


def test_unknown_credentials_fail_the_run_with_imss_reason(
    settings_overrides: dict[str, Any], app: Flask, peer: PlatformPeer, sleeps: list[float]
) -> None:
    rt = runtime_of(app)
    with rt.sessions.begin() as session:
        for stream in STREAMS:
            sync_state.set_value(session, f"dataset:{stream}", "d")
            sync_state.set_value(session, f"schema:{stream}", "s")
    wrong = rt.settings.model_copy(update={"aep_client_secret": "wrong"})
    run = export_with(app, wrong)
    assert run.status == "failed" and run.error is not None
    assert run.error.startswith("cannot authenticate with Adobe IMS: POST ") and "HTTP 400" in run.error
    assert "wrong" not in run.error


def export_with(app: Flask, settings: Any) -> Any:
    from sync import service

    return service.run_now("logs", settings=settings, sessions=runtime_of(app).sessions, trigger="cli")
