"""Fault injection for the local Platform peer: a fault read from the JSON of ``POST /_peer/faults``
(or ``peer.add_fault``), Adobe's answer for an injected status, and the messages a partial
``streaming-batch`` fault rejects. The fault format is described in :mod:`sync.peers.platform`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from sync.peers.platform_api.state import Fault, PeerState, json_response
from sync.peers.platform_api.streaming import DCCS_AUTH_PROBLEM, DCCS_INLET_PROBLEM

CATEGORIES = ("ims", "registry", "catalog", "labels", "batch", "streaming", "streaming-batch", "privacy")
FAULT_STATUSES = (400, 401, 403, 404, 413, 429, 500, 502, 503, 504)
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def make_fault(spec: Any) -> Fault:
    """A :class:`Fault` from the JSON of ``POST /_peer/faults``; ValueError when it makes no sense."""
    if not isinstance(spec, dict):
        raise ValueError("a fault is a JSON object")
    category = spec.get("path")
    if category not in CATEGORIES:
        raise ValueError(f"path must be one of {', '.join(CATEGORIES)}")
    times = spec.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise ValueError("times must be a positive integer")
    status = spec.get("status")
    if status is not None and status not in FAULT_STATUSES:
        raise ValueError(f"status must be one of {FAULT_STATUSES}")
    slow = float(spec.get("slow") or 0)
    if not 0 <= slow <= 120:
        raise ValueError("slow is a number of seconds between 0 and 120")
    retry_after = spec.get("retry_after")
    if retry_after is None and status in (429, 503):
        retry_after = 1
    partial = spec.get("partial")
    every: int | None = None
    ids: tuple[str, ...] = ()
    message_status = 503
    if partial is not None:
        if category != "streaming-batch" or status is not None:
            raise ValueError("partial applies to path streaming-batch, without a status")
        if not isinstance(partial, dict):
            raise ValueError('partial is {"every": N} or {"ids": [...]}')
        every = partial.get("every")
        ids = tuple(str(i) for i in partial.get("ids") or ())
        if (every is None) == (not ids) or (every is not None and (not isinstance(every, int) or every < 1)):
            raise ValueError("partial needs either every (a positive integer) or ids (a list of _id values)")
        message_status = int(partial.get("status", 503))
    if status is None and not slow and partial is None:
        raise ValueError("a fault needs a status, slow or partial")
    return Fault(
        category=category,
        times=times,
        status=status,
        retry_after=None if retry_after is None else float(retry_after),
        slow=slow,
        every=every,
        ids=ids,
        message_status=message_status,
    )


def fault_response(state: PeerState, fault: Fault) -> Response:
    """Adobe's answer for an injected status, with Retry-After on 429 and 503."""
    status = int(fault.status or 500)
    headers = {}
    if fault.retry_after is not None and status in (429, 503):
        headers["Retry-After"] = str(math.ceil(fault.retry_after))
    title = _TITLES.get(status, "Error")
    if fault.category == "ims":
        error = {401: "invalid_client", 429: "too_many_requests", 400: "invalid_request"}.get(status, "server_error")
        return json_response(
            {"error": error, "error_description": f"{title} (injected by the local peer)"}, status, headers
        )
    if fault.category in ("streaming", "streaming-batch"):
        if status in (401, 403):
            body: dict[str, Any] = {
                "type": DCCS_AUTH_PROBLEM,
                "status": str(status),
                "title": "Authorization",
                "report": {"message": f"[{state.config.inlet_id}] Ims service token is invalid"},
            }
        else:
            message = f"inletId: [{state.config.inlet_id}] imsOrgId: [{state.config.org_id}] {title}"
            body = {"type": DCCS_INLET_PROBLEM, "status": status, "title": title, "report": {"message": message}}
        return json_response(body, status, headers)
    codes = {401: ("401013", "Oauth token is not valid"), 403: ("403003", "Api Key is invalid")}
    code, message = codes.get(status, (f"{status}050", title))
    return json_response({"error_code": code, "message": message}, status, headers)


def partial_failures(fault: Fault) -> Callable[[int, Any], int | None]:
    """For a partial fault: the per-message status of the ``index``-th message, None to accept it."""

    def fail(index: int, message: Any) -> int | None:
        if fault.every is not None and (index + 1) % fault.every == 0:
            return fault.message_status
        entity = (message.get("body") or {}).get("xdmEntity") if isinstance(message, dict) else None
        if fault.ids and isinstance(entity, dict) and str(entity.get("_id")) in fault.ids:
            return fault.message_status
        return None

    return fail
