"""Streaming ingestion (Data Collection Core Service): one message or a batch of messages to an
inlet, validated as the DCCS validates them."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from sync.peers import platform_xdm as xdm
from sync.peers.platform_api.state import (
    XED_CONTENT_TYPE,
    ApiError,
    PeerState,
    json_response,
    profile_enabled,
    profile_outcome,
    store_record,
)

DCCS_INLET_PROBLEM = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
DCCS_AUTH_PROBLEM = "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"


def _dccs(state: PeerState, status: int, title: str, message: str, **extra: Any) -> ApiError:
    report: dict[str, Any] = {
        "message": f"inletId: [{state.config.inlet_id}] imsOrgId: [{state.config.org_id}] {message}"
    }
    report.update(extra)
    return ApiError(status, {"type": DCCS_INLET_PROBLEM, "status": status, "title": title, "report": report})


def check_streaming(state: PeerState, request: Request, inlet: str) -> None:
    if inlet != state.config.inlet_id:
        raise ApiError(
            404,
            {
                "type": DCCS_INLET_PROBLEM,
                "status": 404,
                "title": "Not Found",
                "report": {"message": f"inletId: [{inlet}] Inlet not found"},
            },
        )
    if not state.config.require_streaming_auth:
        return
    valid = state.valid_token(request)
    if not valid:
        why = "Ims service token is empty" if valid is None else "Ims service token is invalid"
        raise ApiError(
            401,
            {
                "type": DCCS_AUTH_PROBLEM,
                "status": "401",
                "title": "Authorization",
                "report": {"message": f"[{inlet}] {why}"},
            },
        )


def read_streaming_body(state: PeerState, request: Request) -> Any:
    limit = state.config.max_request_bytes
    if (request.content_length or 0) > limit:
        raise _dccs(state, 413, "Payload Too Large", f"Payload is larger than {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise _dccs(state, 413, "Payload Too Large", f"Payload is larger than {limit} bytes")
    if request.mimetype != "application/json":
        raise _dccs(
            state, 400, "Invalid XDM Message Format", "A valid content-type must be specified: application/json"
        )
    try:
        return json.loads(data)
    except ValueError:
        raise _dccs(state, 400, "Invalid XDM Message Format", "Message is not valid JSON") from None


@dataclass
class Outcome:
    """What happened to one streamed message."""

    status: int  # 200 accepted, or the per-message error status
    message: str = ""
    violations: list[dict[str, Any]] = field(default_factory=list)
    dataset_id: str = ""
    record: Any = None
    source: str = ""
    profile: str = "not enabled"
    failed_async: bool = False


def examine(state: PeerState, message: Any) -> Outcome:  # noqa: PLR0911 -- one return per DCCS check
    """DCCS's checks of an envelope, then XDM validation of its record (Platform's streaming validation)."""
    if (
        not isinstance(message, dict)
        or not isinstance(message.get("header"), dict)
        or not isinstance(message.get("body"), dict)
    ):
        return Outcome(400, "Message has unknown xdm format")
    header, body = message["header"], message["body"]
    if "imsOrgId" in header and header["imsOrgId"] != state.config.org_id:
        return Outcome(400, "Message has an absent or wrong ims org in the header")
    schema_ref = header.get("schemaRef")
    if (
        not isinstance(schema_ref, dict)
        or not isinstance(schema_ref.get("id"), str)
        or not XED_CONTENT_TYPE.match(str(schema_ref.get("contentType", "")))
    ):
        return Outcome(400, "Message has unknown xdm format")
    dataset_id = header.get("datasetId")
    dataset = state.datasets.get(dataset_id) if isinstance(dataset_id, str) else None
    if dataset is None:
        return Outcome(400, f"Message has an unknown dataset id [{dataset_id}] in the header")
    if (dataset.get("schemaRef") or {}).get("id") != schema_ref["id"]:
        return Outcome(400, "Message has unknown xdm format")
    meta = body.get("xdmMeta")
    meta_ref = meta.get("schemaRef") if isinstance(meta, dict) else None
    if not isinstance(meta_ref, dict) or meta_ref.get("id") != schema_ref["id"]:
        return Outcome(400, "Message has unknown xdm format")
    source = header.get("source")
    if source is not None and (not isinstance(source, dict) or not isinstance(source.get("name"), str)):
        return Outcome(400, "Payload header source must be an object with a name")
    source_name = source["name"] if isinstance(source, dict) else f"inlet {state.config.inlet_id}"
    entity = body.get("xdmEntity")
    if not isinstance(entity, dict):
        return Outcome(400, "Payload body is missing xdmEntity")
    compiled = state.compiled_for(schema_ref["id"])
    problems = xdm.violations(compiled, entity)
    if problems:
        text = f"Message is invalid: {len(problems)} schema violations found: " + "; ".join(
            f"{p['pointerToViolation']}: {p['message']}" for p in problems
        )
        if state.config.reject_invalid_records:
            return Outcome(400, text, problems, dataset_id, entity, source_name)
        return Outcome(200, text, problems, dataset_id, entity, source_name, failed_async=True)
    outcome = profile_outcome(state, compiled, entity, state.primary_path(schema_ref["id"]), profile_enabled(dataset))
    if outcome.startswith("dropped") and state.config.strict_profile_limits:
        return Outcome(
            400,
            f"Real-Time Customer Profile would drop this record: {outcome.removeprefix('dropped: ')}",
            [],
            dataset_id,
            entity,
            source_name,
        )
    return Outcome(200, "", [], dataset_id, entity, source_name, outcome)


def _keep(state: PeerState, outcome: Outcome, via: str, xaction_id: str, received: int) -> None:
    ref = {"xactionId": xaction_id, "source": outcome.source}
    if outcome.failed_async:
        state.failed.setdefault(outcome.dataset_id, []).append(
            {
                "seq": next(state.sequence),
                "via": via,
                **ref,
                "receivedTimeMs": received,
                "errors": outcome.violations,
                "record": outcome.record,
            }
        )
    else:
        store_record(state, outcome.dataset_id, outcome.record, via=via, ref=ref, profile=outcome.profile, at=received)


def stream_one(state: PeerState, request: Request, inlet: str) -> Response:
    check_streaming(state, request, inlet)
    message = read_streaming_body(state, request)
    received = state.now_ms()
    outcome = examine(state, message)
    sync = (request.args.get("syncValidation") or request.args.get("synchronousValidation") or "").lower() == "true"
    if outcome.status != 200 or (sync and outcome.failed_async):
        if outcome.violations:
            cause = {
                "_streamingValidation": [
                    {
                        "schemaLocation": "#",
                        "pointerToViolation": "#",
                        "causingExceptions": outcome.violations,
                        "message": f"{len(outcome.violations)} schema violations found",
                    }
                ]
            }
            raise _dccs(state, 400, "Invalid XDM Message Format", "Message is invalid", cause=cause)
        raise _dccs(state, outcome.status, "Invalid XDM Message Format", outcome.message)
    xaction_id = f"{received}:{secrets.randbelow(9000) + 1000}:{next(state.stream_batches)}"
    _keep(state, outcome, "streaming", xaction_id, received)
    answer: dict[str, Any] = {"inletId": inlet, "xactionId": xaction_id, "receivedTimeMs": received}
    answer["syncValidation"] = {"status": "pass"} if sync else {"skipped": True}
    return json_response(answer)


def stream_batch(
    state: PeerState, request: Request, inlet: str, fail: Callable[[int, Any], int | None] | None = None
) -> Response:
    """``{"messages": [...]}`` -> 207 with one result per message; ``fail`` injects per-message errors."""
    check_streaming(state, request, inlet)
    body = read_streaming_body(state, request)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise _dccs(state, 400, "Invalid XDM Message Format", 'The request body must be {"messages": [...]}')
    received = state.now_ms()
    batch_id = f"{received}:{secrets.randbelow(9000) + 1000}:{next(state.stream_batches)}"
    responses: list[dict[str, Any]] = []
    for index, message in enumerate(body["messages"]):
        injected = fail(index, message) if fail is not None else None
        if injected is not None:
            responses.append(
                {"statusCode": injected, "message": _prefixed(state, "Service is not currently available. Retry later")}
            )
            continue
        outcome = examine(state, message)
        if outcome.status != 200:
            responses.append({"statusCode": outcome.status, "message": _prefixed(state, outcome.message)})
            continue
        xaction_id = f"{batch_id}:{index}"
        _keep(state, outcome, "streaming-batch", xaction_id, received)
        responses.append({"xactionId": xaction_id})
    return json_response(
        {"inletId": inlet, "batchId": batch_id, "receivedTimeMs": received, "responses": responses}, 207
    )


def _prefixed(state: PeerState, message: str) -> str:
    return f"inletId: [{state.config.inlet_id}] imsOrgId: [{state.config.org_id}] {message}"
