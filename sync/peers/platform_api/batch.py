"""Batch ingestion: create a batch, upload its files, complete it; validation of every record
against the dataset's schema, and the batch's status and errors as Catalog reports them."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from sync.peers import platform_xdm as xdm
from sync.peers.platform_api.state import (
    Batch,
    PeerState,
    bad_request,
    dataset_or_404,
    json_body,
    json_response,
    profile_enabled,
    profile_outcome,
    store_record,
)


def batch_view(state: PeerState, batch: Batch, *, poll: bool) -> dict[str, Any]:
    if batch.status == "staging":
        if poll and batch.staging_polls <= 0:
            _finish(state, batch)
        elif poll:
            batch.staging_polls -= 1
    view: dict[str, Any] = {
        "id": batch.id,
        "externalId": batch.id,
        "status": batch.status,
        "imsOrg": state.config.org_id,
        "inputFormat": batch.input_format,
        "relatedObjects": [{"type": "dataSet", "id": batch.dataset_id}],
        "tags": batch.tags,
        "created": batch.created,
        "updated": batch.completed or batch.created,
        "createdClient": state.config.client_id,
        "createdUser": f"{state.config.client_id}@techacct.adobe.com",
        "updatedUser": f"{state.config.client_id}@techacct.adobe.com",
        "version": "1.0.0",
    }
    if batch.completed is not None:
        view["started"] = batch.completed
    if batch.status in ("success", "failed"):
        view["completed"] = batch.completed
        view["metrics"] = batch.metrics
        view["errors"] = batch.errors
    return view


def batch_create(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    body = json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("datasetId"), str):
        raise bad_request("A batch needs a datasetId")
    dataset_or_404(state, body["datasetId"])
    input_format = body.get("inputFormat") or {}
    if not isinstance(input_format, dict) or input_format.get("format") not in ("json", "parquet", "csv"):
        raise bad_request("inputFormat.format must be json, parquet or csv")
    if input_format["format"] != "json":
        raise bad_request("The local Platform peer reads JSON batches only")
    tags: dict[str, Any] = {}
    if body.get("enableErrorDiagnostics"):
        tags["acp_enableErrorDiagnostics"] = True
    if body.get("partialIngestionPercentage") is not None:
        tags["acp_partialIngestionPercent"] = body["partialIngestionPercentage"]
    batch_id = _ulid(state.now_ms())
    batch = Batch(batch_id, body["datasetId"], input_format, state.now_ms(), tags)
    state.batches[batch_id] = batch
    return json_response(batch_view(state, batch, poll=False), 201)


def _ulid(ms: int) -> str:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (ms << 80) | secrets.randbits(80)
    return "".join(alphabet[(value >> shift) & 31] for shift in range(125, -1, -5))


def batch_file(state: PeerState, request: Request, batch_id: str, dataset_id: str, name: str) -> Response:
    state.check_platform(request)
    batch = state.batches.get(batch_id)
    if batch is None:
        raise bad_request(f"Batch {batch_id} is not found", 404, "NotFoundError")
    if batch.dataset_id != dataset_id:
        raise bad_request(f"Batch {batch_id} belongs to dataset {batch.dataset_id}, not {dataset_id}")
    if batch.status != "loading":
        raise bad_request(f"Batch {batch_id} is {batch.status}: files can only be added while it is loading")
    if (request.mimetype or "") != "application/octet-stream":
        raise bad_request("A file upload needs Content-Type: application/octet-stream")
    length = request.content_length
    if length is not None and length > state.config.max_file_bytes:
        raise bad_request("Files over 256 MB need the large file upload API", 413, "PayloadTooLarge")
    data = request.stream.read(state.config.max_file_bytes + 1)
    if len(data) > state.config.max_file_bytes:
        raise bad_request("Files over 256 MB need the large file upload API", 413, "PayloadTooLarge")
    batch.files[name] = data
    return Response(status=200)


def batch_action(state: PeerState, request: Request, batch_id: str) -> Response:
    state.check_platform(request)
    batch = state.batches.get(batch_id)
    if batch is None:
        raise bad_request(f"Batch {batch_id} is not found", 404, "NotFoundError")
    action = (request.args.get("action") or "").upper()
    if action == "COMPLETE":
        if batch.status == "loading":  # completing twice is safe: the second call changes nothing
            _complete(state, batch)
        elif batch.status == "aborted":
            raise bad_request(f"Batch {batch_id} was aborted")
        return Response(status=200)
    if action == "ABORT":
        if batch.status not in ("loading", "aborted"):
            raise bad_request(f"Batch {batch_id} is {batch.status} and cannot be aborted")
        batch.status = "aborted"
        return Response(status=200)
    raise bad_request(f"Unknown batch action {action or '(none)'}: use COMPLETE or ABORT")


def _parse_file(data: bytes, multi_line: bool) -> Iterable[tuple[int, Any, str | None]]:
    """(row number, record, parse error) for each row of a JSON file."""
    if multi_line:
        try:
            document = json.loads(data)
        except ValueError as exc:
            yield 1, None, f"The file is not valid JSON: {exc}"
            return
        for number, item in enumerate(document if isinstance(document, list) else [document], start=1):
            yield number, item, None
        return
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line), None
        except ValueError as exc:
            yield number, None, str(exc)


def _complete(state: PeerState, batch: Batch) -> None:
    dataset = state.datasets.get(batch.dataset_id)
    batch.completed = state.now_ms()
    batch.status = "staging"
    batch.staging_polls = state.config.batch_staging_polls
    if dataset is None:
        batch.final_status = "failed"
        batch.errors = [{"code": "INGEST-1211-400", "description": f"Dataset {batch.dataset_id} no longer exists"}]
        return
    compiled = state.compiled_for(dataset["schemaRef"]["id"])
    primary = state.primary_path(dataset["schemaRef"]["id"])
    profile = profile_enabled(dataset)
    multi_line = bool(batch.input_format.get("isMultiLineJson"))
    parse_rows: list[int] = []
    required_rows: list[int] = []
    invalid_rows: list[int] = []
    total = 0
    for file_name, data in batch.files.items():
        for number, record, error in _parse_file(data, multi_line):
            total += 1
            row = {"file": file_name, "row": number}
            if error is not None or not isinstance(record, dict):
                parse_rows.append(total)
                batch.rejected.append({**row, "errors": [error or "a row must be a JSON object"], "record": record})
                continue
            problems = xdm.violations(compiled, record)
            if problems:
                missing = any(p["keyword"] == "required" for p in problems)
                (required_rows if missing else invalid_rows).append(total)
                batch.rejected.append({**row, "errors": problems, "record": record})
                continue
            batch.accepted.append(
                {"record": record, "profile": profile_outcome(state, compiled, record, primary, profile)}
            )
    failed = len(batch.rejected)
    batch.metrics = {
        "inputByteSize": sum(len(d) for d in batch.files.values()),
        "inputFileCount": len(batch.files),
        "inputRecordCount": total,
        "outputRecordCount": total - failed,
        "failedRecordCount": failed,
    }
    if total == 0:
        batch.final_status = "failed"
        batch.errors = [
            {"code": "106", "description": "Dataset file is empty. Please upload file with data.", "rows": []}
        ]
        return
    if not failed:
        batch.final_status = "success"
        return
    threshold = batch.tags.get("acp_partialIngestionPercent")
    partial_ok = threshold is not None and failed * 100 <= float(threshold) * total
    batch.errors = _batch_errors(
        partial_ok, total, {"parse": parse_rows, "required": required_rows, "invalid": invalid_rows}
    )
    batch.final_status = "success" if partial_ok else "failed"
    if not partial_ok:  # a failed batch ingests nothing
        batch.metrics["outputRecordCount"] = 0


_ROW_ERRORS = {
    "parse": (
        "INGEST-1401-400",
        "The row has corrupted data and cannot be read or parsed. Fix the corrupted data and try again.",
    ),
    "required": (
        "INGEST-1555-400",
        "A required field is either missing or has a value of null. "
        "Add the required field to the input row and try again.",
    ),
    "invalid": (
        "INGEST-1211-400",
        "A value does not conform to the XDM schema of the dataset (type, format, enum or an extraneous field).",
    ),
}


def _batch_errors(partial_ok: bool, total: int, rows: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    """The ``errors`` of a batch with bad rows (partial batch ingestion guide's codes)."""
    failed = sum(len(numbers) for numbers in rows.values())
    if partial_ok:
        summary = {
            "code": "INGEST-1212-400",
            "description": f"Encountered {failed} errors in the data. Successfully ingested {total - failed} rows. "
            "Please review the associated diagnostic files for more details.",
        }
    else:
        summary = {
            "code": "INGEST-1211-400",
            "description": "Encountered errors while parsing, converting or otherwise validating the data.",
        }
    details = [
        {
            "code": _ROW_ERRORS[kind][0],
            "description": _ROW_ERRORS[kind][1],
            "recordCount": len(numbers),
            "rows": numbers,
        }
        for kind, numbers in rows.items()
        if numbers
    ]
    return [summary, *details]


def _finish(state: PeerState, batch: Batch) -> None:
    batch.status = batch.final_status
    dataset = state.datasets.get(batch.dataset_id)
    if dataset is not None:
        dataset["lastBatchId"] = batch.id
        dataset["lastBatchStatus"] = batch.status
        if batch.status == "success":
            dataset["lastSuccessfulBatch"] = batch.id
    received = state.now_ms()
    if batch.status == "success":
        for item in batch.accepted:
            store_record(
                state,
                batch.dataset_id,
                item["record"],
                via="batch",
                ref={"batchId": batch.id},
                profile=item["profile"],
                at=received,
            )
    for item in batch.rejected:
        state.failed.setdefault(batch.dataset_id, []).append(
            {"seq": next(state.sequence), "via": "batch", "batchId": batch.id, "receivedTimeMs": received, **item}
        )
