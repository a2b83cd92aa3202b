"""Batch ingestion: create, upload JSON files, complete, and follow the batch in the Catalog
through ``staging`` to ``success`` or ``failed`` with Adobe's errors and metrics."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sync.peers.platform import PeerConfig
from tests.sync.peers.conftest import Aep, event

IMPORT = "/data/foundation/import/batches"


def create(aep: Aep, dataset_id: str, **options: Any) -> dict[str, Any]:
    body = {"datasetId": dataset_id, "inputFormat": {"format": "json", **options.pop("input", {})}, **options}
    response = aep.call("POST", IMPORT, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def upload(aep: Aep, batch_id: str, dataset_id: str, name: str, data: bytes) -> httpx.Response:
    return aep.call(
        "PUT",
        f"{IMPORT}/{batch_id}/datasets/{dataset_id}/files/{name}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def lines(*records: Any) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def complete(aep: Aep, batch_id: str) -> None:
    response = aep.call("POST", f"{IMPORT}/{batch_id}", params={"action": "COMPLETE"})
    assert response.status_code == 200 and response.content == b""


def poll(aep: Aep, batch_id: str) -> dict[str, Any]:
    response = aep.call("GET", f"/data/foundation/catalog/batches/{batch_id}")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == [batch_id]
    return dict(body[batch_id])


def test_happy_path_goes_through_staging_to_success(aep: Aep, events: dict[str, str]) -> None:
    batch = create(aep, events["dataset"])
    assert batch["status"] == "loading" and batch["id"]
    assert batch["relatedObjects"] == [{"type": "dataSet", "id": events["dataset"]}]
    assert (
        upload(aep, batch["id"], events["dataset"], "part-1.json", lines(event("b1"), event("b2"))).status_code == 200
    )
    assert upload(aep, batch["id"], events["dataset"], "dir/part-2.json", lines(event("b3"))).status_code == 200
    assert poll(aep, batch["id"])["status"] == "loading"
    complete(aep, batch["id"])
    complete(aep, batch["id"])  # completing again is safe
    assert poll(aep, batch["id"])["status"] == "staging"
    assert aep.records(events["dataset"]) == []  # nothing lands before the batch succeeds
    done = poll(aep, batch["id"])
    assert done["status"] == "success" and done["errors"] == []
    assert done["metrics"] == {
        "inputByteSize": len(lines(event("b1"), event("b2"))) + len(lines(event("b3"))),
        "inputFileCount": 2,
        "inputRecordCount": 3,
        "outputRecordCount": 3,
        "failedRecordCount": 0,
    }
    kept = aep.records(events["dataset"])
    assert [r["record"]["_id"] for r in kept] == ["b1", "b2", "b3"]
    assert {r["batchId"] for r in kept} == {batch["id"]} and kept[0]["via"] == "batch"
    dataset = aep.call("GET", f"/data/foundation/catalog/dataSets/{events['dataset']}").json()[events["dataset"]]
    assert dataset["lastBatchId"] == batch["id"] and dataset["lastBatchStatus"] == "success"
    listed = aep.call("GET", "/data/foundation/catalog/batches", params={"dataSet": events["dataset"]}).json()
    assert list(listed) == [batch["id"]]


def test_invalid_records_fail_the_batch_with_errors(aep: Aep, events: dict[str, str]) -> None:
    batch = create(aep, events["dataset"])
    bad_rows = lines(event("b1"), {"_id": "b2"}, event("b3", _id=3)) + b"{not json\n"
    upload(aep, batch["id"], events["dataset"], "part-1.json", bad_rows)
    complete(aep, batch["id"])
    poll(aep, batch["id"])
    failed = poll(aep, batch["id"])
    assert failed["status"] == "failed"
    codes = {e["code"]: e for e in failed["errors"]}
    assert set(codes) == {"INGEST-1211-400", "INGEST-1555-400", "INGEST-1401-400"}
    assert codes["INGEST-1555-400"]["recordCount"] == 1 and codes["INGEST-1555-400"]["rows"] == [2]
    assert codes["INGEST-1401-400"]["rows"] == [4]
    assert failed["metrics"]["failedRecordCount"] == 3 and failed["metrics"]["outputRecordCount"] == 0
    assert aep.records(events["dataset"]) == []
    assert [f["row"] for f in aep.records(events["dataset"], failed=True)] == [2, 3, 4]


def test_partial_ingestion_keeps_the_good_rows(aep: Aep, events: dict[str, str]) -> None:
    batch = create(aep, events["dataset"], partialIngestionPercentage=40, enableErrorDiagnostics=True)
    upload(aep, batch["id"], events["dataset"], "p.json", lines(event("b1"), event("b2"), {"_id": "b3"}))
    complete(aep, batch["id"])
    poll(aep, batch["id"])
    done = poll(aep, batch["id"])
    assert done["status"] == "success" and done["errors"][0]["code"] == "INGEST-1212-400"
    assert done["tags"] == {"acp_enableErrorDiagnostics": True, "acp_partialIngestionPercent": 40}
    assert [r["record"]["_id"] for r in aep.records(events["dataset"])] == ["b1", "b2"]


def test_json_lines_by_default_and_arrays_with_multi_line_json(aep: Aep, events: dict[str, str]) -> None:
    array = json.dumps([event("a1"), event("a2")]).encode()
    plain = create(aep, events["dataset"])
    upload(aep, plain["id"], events["dataset"], "array.json", array)
    complete(aep, plain["id"])
    poll(aep, plain["id"])
    assert poll(aep, plain["id"])["status"] == "failed"
    multi = create(aep, events["dataset"], input={"isMultiLineJson": True})
    upload(aep, multi["id"], events["dataset"], "array.json", json.dumps([event("a1"), event("a2")], indent=2).encode())
    complete(aep, multi["id"])
    poll(aep, multi["id"])
    assert poll(aep, multi["id"])["status"] == "success"
    assert [r["record"]["_id"] for r in aep.records(events["dataset"])] == ["a1", "a2"]


@pytest.mark.parametrize("peer_config", [PeerConfig(batch_staging_polls=0, max_file_bytes=1000)])
def test_limits_and_wrong_calls(aep: Aep, events: dict[str, str]) -> None:
    empty = create(aep, events["dataset"])
    complete(aep, empty["id"])
    assert poll(aep, empty["id"])["errors"][0]["code"] == "106"
    batch = create(aep, events["dataset"])
    assert upload(aep, batch["id"], events["dataset"], "big.json", b" " * 1001).status_code == 413
    text = aep.call(
        "PUT",
        f"{IMPORT}/{batch['id']}/datasets/{events['dataset']}/files/x.json",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert text.status_code == 400
    assert upload(aep, batch["id"], "000000000000000000000000", "x.json", b"{}").status_code == 400
    assert aep.call("POST", f"{IMPORT}/{batch['id']}", params={"action": "ABORT"}).status_code == 200
    assert poll(aep, batch["id"])["status"] == "aborted"
    assert upload(aep, batch["id"], events["dataset"], "late.json", lines(event("b1"))).status_code == 400
    parquet = aep.call("POST", IMPORT, json={"datasetId": events["dataset"], "inputFormat": {"format": "parquet"}})
    assert parquet.status_code == 400
    assert aep.call("GET", "/data/foundation/catalog/batches/nothing").status_code == 404
