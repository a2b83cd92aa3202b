"""What the Platform refuses, and what becomes of the rows: only a fault of the record itself makes a
rejected row; a set-up the Platform does not know (it forgot its datasets, an unknown inlet, refused
credentials) or a request refused as a whole fails the stream, keeps its watermark, and the next
run sends every row, once."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select, update

from store.codes import BroadLogStatus
from store.models import BroadLog, SyncReject, SyncRun
from store.types import utcnow
from sync import service, xdm
from sync.peers.platform import PlatformPeer
from sync.xdm import records as xdm_records
from tests.conftest import runtime_of
from tests.sync.export.conftest import ids, records, run_job, state
from tests.sync.export.test_export import expected_ids, seed, summary_of

STREAMS = list(xdm.STREAMS)
PROVISION = "run `flask --app wsgi sync provision`, then export again"


def more(app: Flask, count: int) -> list[int]:
    """``count`` more Sent broadLog rows like the first one, final half an hour ago (after the rows
    of :func:`seed`); returns their ids."""
    at = utcnow() - timedelta(minutes=30)
    with runtime_of(app).sessions.begin() as session:
        first = session.scalars(select(BroadLog).order_by(BroadLog.id)).first()
        assert first is not None
        rows = [
            BroadLog(
                delivery_id=first.delivery_id,
                subscription_id=first.subscription_id,
                profile_id=first.profile_id,
                channel=first.channel,
                address=first.address,
                status=int(BroadLogStatus.SENT),
                provider_message_id=f"0:17{n:011d}%a1b2c3d4e5f6a7b8",
                attempts=1,
                created_at=at,
                event_date=at + timedelta(milliseconds=n),
            )
            for n in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def rejects_of(app: Flask, run_id: int) -> list[SyncReject]:
    with runtime_of(app).sessions() as session:
        return list(session.scalars(select(SyncReject).where(SyncReject.run_id == run_id)))


def last_run(app: Flask, job: str) -> SyncRun:
    with runtime_of(app).sessions() as session:
        run = session.scalars(select(SyncRun).where(SyncRun.job == job).order_by(SyncRun.id.desc())).first()
        assert run is not None
        return run


def watermarks(app: Flask) -> dict[str, str | None]:
    return {stream: state(app, f"export:{stream}") for stream in STREAMS}


# -- the set-up: the Platform forgot what provisioning made ---------------------------------------


def test_a_platform_that_forgot_its_datasets_fails_the_run_and_the_next_run_sends_every_row_once(
    app: Flask, peer: PlatformPeer, provisioned: Any, runner: Any
) -> None:
    first_ids = seed(app, 5)
    first = run_job(app, "logs")
    assert first.status == "succeeded", first.error
    assert Counter(ids(records(app, peer, "broadlog"))) == dict.fromkeys(expected_ids(first_ids), 1)
    before = watermarks(app)
    assert before["broadlog"] is not None and before["broadlog"].endswith(f"|{first_ids[-1]}")
    later = more(app, 4)
    # The peer restarts: it forgets schemas, datasets, records and tokens, as after a real restart.
    httpx.post(f"{peer.url}/_peer/reset").raise_for_status()

    result = runner.invoke(args=["sync", "logs", "--force"])

    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    broadlog = next(line for line in lines if line.startswith("failed   broadlog: "))
    assert broadlog.startswith("failed   broadlog: 0 rows, 0 sent, 0 rejected, 0 retried, watermark ")
    assert (
        "4 records not sent, the Platform refused the stream's set-up, not the records: HTTP 400: " in broadlog
    ) and "Message has an unknown dataset id [" in broadlog
    assert broadlog.endswith(f"; the dataset or schema is unknown to the Platform or not the stream's: {PROVISION}")
    assert "succeeded" not in lines[-2] and " failed: 4 streams, 0 rows, 0 sent, 0 rejected" in lines[-2]
    assert lines[-1].startswith("pushgate: sync logs failed: broadlog: ")
    run = last_run(app, "logs")
    assert run.status == "failed" and rejects_of(app, run.id) == []
    outcome = summary_of(run, "broadlog")
    assert (outcome["status"], outcome["rejected"], outcome["details"]["unsent"]) == ("failed", 0, 4)
    assert watermarks(app) == before

    assert run_job(app, "provision").status == "succeeded"
    again = run_job(app, "logs", force=True)
    assert again.status == "succeeded", again.error
    assert Counter(ids(records(app, peer, "broadlog"))) == dict.fromkeys(expected_ids(later), 1)
    assert summary_of(again, "broadlog")["details"]["watermark"].endswith(f"|{later[-1]}")
    assert rejects_of(app, again.id) == []


def test_batch_ingestion_into_a_forgotten_dataset_fails_the_stream_and_keeps_the_watermark(
    small_threshold: dict[str, Any], app: Flask, peer: PlatformPeer, provisioned: Any
) -> None:
    first_ids = seed(app, 20)
    first = run_job(app, "logs", streams=["broadlog"])
    assert first.status == "succeeded" and summary_of(first, "broadlog")["details"]["mode"] == "streaming"
    before = state(app, "export:broadlog")
    assert before is not None and before.endswith(f"|{first_ids[-1]}")
    later = more(app, 150)
    httpx.post(f"{peer.url}/_peer/reset").raise_for_status()

    down = run_job(app, "logs", streams=["broadlog"], force=True)

    assert down.status == "failed"
    outcome = summary_of(down, "broadlog")
    assert outcome["details"]["mode"] == "batch" and outcome["rejected"] == 0
    assert outcome["reason"].startswith("POST /data/foundation/import/batches: HTTP 404: Dataset ")
    assert outcome["reason"].endswith(PROVISION)
    assert state(app, "export:broadlog") == before and state(app, "batch:broadlog") is None
    assert rejects_of(app, down.id) == []

    assert run_job(app, "provision").status == "succeeded"
    up = run_job(app, "logs", streams=["broadlog"], force=True)
    assert up.status == "succeeded", up.error
    entries = peer.records(state(app, "dataset:broadlog"))  # type: ignore[arg-type]
    assert {e["via"] for e in entries} == {"batch"}
    assert Counter(e["record"]["_id"] for e in entries) == dict.fromkeys(expected_ids(later), 1)
    assert state(app, "export:broadlog").endswith(f"|{later[-1]}")  # type: ignore[union-attr]


# -- a request refused as a whole ---------------------------------------------------------------


#: A streaming inlet id the Platform does not know (inlet ids are 64 hex digits).
UNKNOWN_INLET = hashlib.sha256(b"an HTTP API source connection deleted in the Platform UI").hexdigest()


@pytest.mark.parametrize(
    ("refusal", "said"),
    [
        ("unknown inlet", f"HTTP 404: inletId: [{UNKNOWN_INLET}] Inlet not found; check PUSHGATE_AEP_INLET_ID"),
        ("401", "HTTP 401: [{inlet}] Ims service token is invalid (check the OAuth credentials"),
        ("400", "POST /collection/batch/{{inlet}}: HTTP 400: inletId: [{inlet}] imsOrgId: [{org}] Bad Request"),
    ],
)
def test_a_request_refused_as_a_whole_fails_the_stream_and_keeps_the_watermark(
    app: Flask, peer: PlatformPeer, provisioned: Any, refusal: str, said: str
) -> None:
    first_ids = seed(app, 5)
    assert run_job(app, "logs", streams=["broadlog"]).status == "succeeded"
    before = state(app, "export:broadlog")
    assert before is not None and before.endswith(f"|{first_ids[-1]}")
    later = more(app, 3)
    rt = runtime_of(app)
    settings = rt.settings
    if refusal == "unknown inlet":
        settings = settings.model_copy(update={"aep_inlet_id": UNKNOWN_INLET})
    else:  # the client fetches a new token once after a 401: refuse that one too
        peer.add_fault(path="streaming-batch", status=int(refusal), times=2 if refusal == "401" else 1)

    down = service.run_now(
        "logs", settings=settings, sessions=rt.sessions, trigger="cli", options={"streams": ["broadlog"], "force": True}
    )

    assert down.status == "failed"
    outcome = summary_of(down, "broadlog")
    assert outcome["status"] == "failed" and (outcome["rows"], outcome["applied"], outcome["rejected"]) == (0, 0, 0)
    assert outcome["details"]["unsent"] == 3
    assert said.format(inlet=peer.config.inlet_id, org=peer.config.org_id) in outcome["reason"]
    assert "\n" not in outcome["reason"] and down.error == f"broadlog: failed: {outcome['reason']}"
    assert state(app, "export:broadlog") == before and rejects_of(app, down.id) == []

    with peer.state.lock:
        peer.state.faults.clear()
    up = run_job(app, "logs", streams=["broadlog"], force=True)
    assert up.status == "succeeded", up.error
    got = Counter(ids(records(app, peer, "broadlog")))
    assert got == dict.fromkeys(expected_ids(first_ids + later), 1)


# -- a fault of the record itself ---------------------------------------------------------------


def test_a_record_the_platform_refuses_in_a_207_is_a_rejected_row_and_the_watermark_moves(
    app: Flask, peer: PlatformPeer, provisioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    row_ids = seed(app, 5)
    with runtime_of(app).sessions.begin() as session:
        session.execute(update(BroadLog).where(BroadLog.id == row_ids[2]).values(attempts=-1))
    # The shipped schema lets the record through (as if it missed a constraint); the Platform's does not.
    monkeypatch.setattr(xdm.Validator, "problem", lambda self, record: None)

    run = run_job(app, "logs", streams=["broadlog"])

    assert run.status == "succeeded", run.error
    outcome = summary_of(run, "broadlog")
    assert (outcome["rows"], outcome["applied"], outcome["rejected"]) == (5, 4, 1)
    [reject] = rejects_of(app, run.id)
    assert (reject.file, reject.line) == ("broadlog", row_ids[2])
    assert reject.identity == xdm_records.record_id("broadlog", row_ids[2], int(BroadLogStatus.SENT))
    assert reject.reason.startswith("refused by the Platform: HTTP 400: inletId: [")
    assert "Message is invalid: 1 schema violations found: #/_pushgatelocal/pushgate/broadLog/attempts" in (
        reject.reason
    )
    assert set(ids(records(app, peer, "broadlog"))) == expected_ids(row_ids) - {reject.identity}
    assert state(app, "export:broadlog").endswith(f"|{row_ids[-1]}")  # type: ignore[union-attr]
