"""The local Platform peer's control and inspection API (``/_peer/...``, no auth; not Adobe's):
state, records and requests to inspect, reset, the clock, and faults to inject. The endpoints are
described in :mod:`sync.peers.platform`."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from sync.peers.platform_api.state import ApiError, PeerState, json_response
from sync.peers.platform_faults import make_fault


def control(state: PeerState, request: Request) -> Response:  # noqa: PLR0911 -- one return per control endpoint
    """The answer of the control endpoint ``request`` names (404 for none)."""
    route = (request.method, request.path.rstrip("/"))
    if route == ("GET", "/_peer/state"):
        return json_response(state.summary())
    if route == ("GET", "/_peer/records"):
        dataset_id = request.args.get("dataset", "")
        failed = request.args.get("failed", "").lower() in ("1", "true", "yes")
        with state.lock:
            if dataset_id not in state.datasets:
                return json_response({"detail": f"unknown dataset {dataset_id!r}"}, 404)
        return json_response({"dataset": dataset_id, "records": state.dataset_records(dataset_id, failed=failed)})
    if route == ("GET", "/_peer/requests"):
        with state.lock:
            return json_response(list(state.requests))
    if route == ("POST", "/_peer/reset"):
        state.reset()
        return json_response({"reset": True})
    if route == ("POST", "/_peer/time"):
        body = _control_body(request)
        with state.lock:
            state.clock_offset += float(body.get("advance", 0))
            return json_response({"offset": state.clock_offset})
    if route == ("GET", "/_peer/faults"):
        with state.lock:
            return json_response([fault.describe() for fault in state.faults])
    if route == ("DELETE", "/_peer/faults"):
        with state.lock:
            state.faults.clear()
        return Response(status=204)
    if route == ("POST", "/_peer/faults"):
        body = _control_body(request)
        try:
            specs = body if isinstance(body, list) else [body]
            faults = [make_fault(spec) for spec in specs]
        except (TypeError, ValueError) as exc:
            return json_response({"detail": str(exc)}, 400)
        with state.lock:
            state.faults.extend(faults)
        return json_response([fault.describe() for fault in faults], 201)
    return json_response({"detail": f"no control endpoint {request.method} {request.path}"}, 404)


def _control_body(request: Request) -> Any:
    try:
        return json.loads(request.get_data() or b"{}")
    except ValueError:
        raise ApiError(400, {"detail": "the body is not JSON"}) from None
