"""The local Platform peer's in-memory state, its configuration, and what every API surface
shares: Adobe's error bodies (:class:`ApiError`), JSON responses, request bodies."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from sync.peers import platform_xdm as xdm

ONE_MB = 1_000_000
#: Platform's small-file upload limit (bigger files go through the large file API, not emulated).
MAX_FILE_BYTES = 256 * 1024 * 1024
XED_CONTENT_TYPE = re.compile(r"^application/vnd\.adobe\.xed(-full)?\+json;\s*version=\d+(\.\d+)?$")


@dataclass
class PeerConfig:
    """Who the peer is: the credentials it accepts and the organization it plays."""

    client_id: str = "pushgate-local-client"
    client_secret: str = "pushgate-local-secret"
    #: An IMS org id of the real form: 24 upper-case hex digits and ``@AdobeOrg``.
    org_id: str = "F76BA94B5A11C0FF385CEA3A@AdobeOrg"
    tenant_id: str = "pushgatelocal"
    sandbox: str = "prod"
    inlet_id: str = hashlib.sha256(b"pushgate-local-inlet").hexdigest()
    #: Seconds an IMS token lives (``expires_in``); Adobe issues 86399.
    token_ttl: int = 86399
    #: The inlet is an authenticated streaming connection: a valid bearer token is required.
    require_streaming_auth: bool = True
    #: Report XDM violations in the streaming answer (Adobe's batch endpoint validates records
    #: asynchronously and moves bad ones to an error batch: set False for exactly that).
    reject_invalid_records: bool = True
    #: Report what Profile would drop (over 10 KB / 100 KB, no primary identity) as failures;
    #: False: accept them to the data lake and mark them dropped by Profile, as Adobe does.
    strict_profile_limits: bool = True
    #: GETs of a completed batch that still answer "staging" before its final status.
    batch_staging_polls: int = 1
    max_request_bytes: int = ONE_MB
    max_file_bytes: int = MAX_FILE_BYTES


class ApiError(Exception):
    """An answer other than success, with Adobe's body for it."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return json_response(self.body, self.status, self.headers)


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=dict(headers or {}), content_type="application/json")


def gateway_error(status: int, code: str, message: str) -> ApiError:
    """Adobe I/O gateway errors (Experience Platform troubleshooting guide, request header errors)."""
    return ApiError(status, {"error_code": code, "message": message})


def bad_request(detail: str, status: int = 400, title: str = "BadRequestError") -> ApiError:
    """The Platform services' generic problem shape (``/placeholder/type/uri``)."""
    return ApiError(status, {"type": "/placeholder/type/uri", "status": status, "title": title, "detail": detail})


def xdm_error(status: int, code: str, title: str, detail: str) -> ApiError:
    """Schema Registry errors (XDM troubleshooting guide: ``http://ns.adobe.com/aep/errors/XDM-...``)."""
    return ApiError(
        status,
        {
            "type": f"http://ns.adobe.com/aep/errors/{code}",
            "title": title,
            "status": status,
            "report": {
                "registryRequestId": str(uuid.uuid4()),
                "timestamp": time.strftime("%m-%d-%Y %H:%M:%S", time.gmtime()),
                "detailed-message": detail,
                "sub-errors": [],
            },
            "detail": detail,
        },
    )


def hex_id(length: int) -> str:
    return secrets.token_hex(length // 2)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Token:
    expires_at: float
    client_id: str
    scope: str


@dataclass
class Batch:
    id: str
    dataset_id: str
    input_format: dict[str, Any]
    created: int
    tags: dict[str, Any]
    status: str = "loading"
    files: dict[str, bytes] = field(default_factory=dict)
    completed: int | None = None
    staging_polls: int = 0
    final_status: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, int] = field(default_factory=dict)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Fault:
    """One injected failure, consumed by the next ``times`` calls of its category."""

    category: str
    times: int = 1
    status: int | None = None
    retry_after: float | None = None
    slow: float = 0.0
    every: int | None = None
    ids: tuple[str, ...] = ()
    message_status: int = 503

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.category, "times": self.times}
        if self.status is not None:
            out["status"] = self.status
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.slow:
            out["slow"] = self.slow
        if self.every is not None or self.ids:
            out["partial"] = {"every": self.every, "ids": list(self.ids), "status": self.message_status}
        return out


class PeerState:
    """Everything the peer holds; handlers run under :attr:`lock`."""

    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock_offset = 0.0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tokens: dict[str, Token] = {}
            self.tokens_issued = 0
            self.field_groups: dict[str, dict[str, Any]] = {}
            self.schemas: dict[str, dict[str, Any]] = {}
            self.compiled: dict[str, xdm.CompiledSchema] = {}
            self.descriptors: dict[str, dict[str, Any]] = {}
            self.datasets: dict[str, dict[str, Any]] = {}
            self.labels: dict[str, dict[str, Any]] = {}
            self.batches: dict[str, Batch] = {}
            self.records: dict[str, list[dict[str, Any]]] = {}
            self.failed: dict[str, list[dict[str, Any]]] = {}
            #: Privacy Service jobs by id, in creation order.
            self.privacy_jobs: dict[str, dict[str, Any]] = {}
            self.standard_refs: set[str] = set()
            self.faults: list[Fault] = []
            self.requests: deque[dict[str, Any]] = deque(maxlen=2000)
            self.sequence = itertools.count(1)
            self.stream_batches = itertools.count(1)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    # -- what tests read ---------------------------------------------------------------------------

    def dataset_records(self, dataset_id: str, *, failed: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            source = self.failed if failed else self.records
            return copy.deepcopy(source.get(dataset_id, []))

    def summary(self) -> dict[str, Any]:
        with self.lock:
            datasets = []
            for dataset_id, dataset in self.datasets.items():
                accepted = self.records.get(dataset_id, [])
                ids = [r["record"].get("_id") for r in accepted if isinstance(r["record"], dict)]
                datasets.append(
                    {
                        "id": dataset_id,
                        "name": dataset.get("name"),
                        "schema": (dataset.get("schemaRef") or {}).get("id"),
                        "profile": profile_enabled(dataset),
                        "labels": self.labels.get(dataset_id, {}).get("labels", []),
                        "records": len(accepted),
                        "distinct_ids": len(set(ids)),
                        "duplicates": len(ids) - len(set(ids)),
                        "failed": len(self.failed.get(dataset_id, [])),
                        "profile_dropped": sum(1 for r in accepted if r.get("profile", "").startswith("dropped")),
                    }
                )
            calls: dict[str, int] = {}
            for entry in self.requests:
                calls[entry["category"]] = calls.get(entry["category"], 0) + 1
            return {
                "org": self.config.org_id,
                "tenant": self.config.tenant_id,
                "sandbox": self.config.sandbox,
                "inlet": self.config.inlet_id,
                "client_id": self.config.client_id,
                "tokens_issued": self.tokens_issued,
                "field_groups": [resource_summary(r) for r in self.field_groups.values()],
                "schemas": [
                    {
                        **resource_summary(r),
                        "class": r.get("meta:class"),
                        "profile": "union" in (r.get("meta:immutableTags") or []),
                        "primary_identity": self.primary_path(r["$id"]),
                        "refs": [item.get("$ref") for item in r.get("allOf") or []],
                    }
                    for r in self.schemas.values()
                ],
                "descriptors": list(self.descriptors.values()),
                "standard_refs": sorted(self.standard_refs),
                "datasets": datasets,
                "batches": [{"id": b.id, "dataset": b.dataset_id, "status": b.status} for b in self.batches.values()],
                "privacy_jobs": copy.deepcopy(list(self.privacy_jobs.values())),
                "faults": [f.describe() for f in self.faults],
                "calls": calls,
            }

    def primary_path(self, schema_id: str) -> str | None:
        for descriptor in self.descriptors.values():
            if (
                descriptor.get("@type") == "xdm:descriptorIdentity"
                and descriptor.get("xdm:sourceSchema") == schema_id
                and descriptor.get("xdm:isPrimary") is True
            ):
                return str(descriptor.get("xdm:sourceProperty"))
        return None

    # -- auth --------------------------------------------------------------------------------------

    def issue_token(self, client_id: str, scope: str) -> str:
        created = self.now_ms()
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "local-peer"}).encode())
        claims = {
            "id": str(uuid.uuid4()),
            "type": "access_token",
            "client_id": client_id,
            "org": self.config.org_id,
            "created_at": str(created),
            "expires_in": str(self.config.token_ttl * 1000),
            "scope": scope,
        }
        token = f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(32))}"
        self.tokens[token] = Token(self.now() + self.config.token_ttl, client_id, scope)
        self.tokens_issued += 1
        return token

    def valid_token(self, request: Request) -> bool | None:
        """True for a live token this peer issued, False for any other, None when none is sent."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            return None
        found = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return found is not None and found.expires_at > self.now()

    def check_platform(self, request: Request, *, sandbox: bool = True) -> None:
        """The headers every Platform API call carries (token, API key, organization, sandbox).
        ``sandbox=False``: an API that works across the organization's sandboxes and ignores
        ``x-sandbox-name`` (the Privacy Service)."""
        valid = self.valid_token(request)
        if valid is None:
            raise gateway_error(401, "403010", "Oauth token is missing.")
        if not valid:
            raise gateway_error(401, "401013", "Oauth token is not valid")
        api_key = request.headers.get("x-api-key")
        if not api_key:
            raise gateway_error(403, "403000", "Api Key is required")
        if api_key != self.config.client_id:
            raise gateway_error(403, "403003", "Api Key is invalid")
        org = request.headers.get("x-gw-ims-org-id")
        if not org:
            raise gateway_error(400, "400003", "Missing header")
        if org != self.config.org_id:
            raise gateway_error(403, "403025", "Profile is not valid")
        if not sandbox:
            return
        # Requests without a sandbox name go to the default production sandbox, "prod".
        name = request.headers.get("x-sandbox-name") or "prod"
        if name != self.config.sandbox:
            raise bad_request(f"Sandbox '{name}' is not available to {org}", 403, "Forbidden")

    def compiled_for(self, schema_id: str) -> xdm.CompiledSchema:
        compiled = self.compiled.get(schema_id)
        if compiled is None:
            try:
                compiled = xdm.compile_schema(self.schemas[schema_id], self.field_groups, self.config.tenant_id)
            except xdm.CompileError as exc:
                raise bad_request(f"Schema {schema_id} cannot be used: {exc}") from None
            self.compiled[schema_id] = compiled
        return compiled


def resource_summary(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {key: resource.get(key) for key in ("$id", "meta:altId", "version", "title")}


def profile_enabled(dataset: Mapping[str, Any]) -> bool:
    return "enabled:true" in ((dataset.get("tags") or {}).get("unifiedProfile") or [])


def json_body(request: Request) -> Any:
    """The JSON body of a POST, PUT or PATCH, which must say ``Content-Type: application/json``."""
    if request.mimetype not in ("application/json", "application/json-patch+json"):
        raise bad_request("A valid content-type must be specified")
    try:
        return json.loads(request.get_data(cache=True) or b"null")
    except ValueError:
        raise bad_request("The request body is not valid JSON") from None


def matches_property(resource: Mapping[str, Any], condition: str) -> bool:
    for operator in ("==", "!=", "<=", ">=", "<", ">"):
        name, sep, wanted = condition.partition(operator)
        if sep:
            break
    else:
        return condition in resource
    value = resource.get(name)
    if operator in ("==", "!="):
        hit = wanted in value if isinstance(value, list) else str(value) == wanted
        return hit if operator == "==" else not hit
    try:
        left: Any = float(str(value))
        right: Any = float(wanted)
    except ValueError:
        left, right = str(value), wanted
    return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[operator])


def dataset_or_404(state: PeerState, dataset_id: str) -> dict[str, Any]:
    dataset = state.datasets.get(dataset_id)
    if dataset is None:
        raise bad_request(f"Dataset {dataset_id} is not found", 404, "NotFoundError")
    return dataset


def store_record(
    state: PeerState, dataset_id: str, record: Any, *, via: str, ref: dict[str, Any], profile: str, at: int
) -> None:
    state.records.setdefault(dataset_id, []).append(
        {"seq": next(state.sequence), "via": via, **ref, "receivedTimeMs": at, "profile": profile, "record": record}
    )


def profile_outcome(
    state: PeerState, compiled: xdm.CompiledSchema, record: dict[str, Any], primary: str | None, profile: bool
) -> str:
    if not profile:
        return "not enabled"
    problem = xdm.profile_problem(compiled, record, primary)
    return f"dropped: {problem}" if problem else "ingested"
