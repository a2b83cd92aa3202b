"""The Adobe APIs the local Platform peer answers, over one in-memory state.

Every handler takes the peer's :class:`PeerState` and a Werkzeug request and returns a response in
Adobe's shape; :class:`ApiError` carries Adobe's error bodies. :mod:`sync.peers.platform` serves
them over HTTP and adds fault injection and the inspection API; the module docstring there lists
the endpoints and the Adobe documentation each one follows.
"""

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sync.peers import platform_xdm as xdm

ONE_MB = 1_000_000
#: Platform's small-file upload limit (bigger files go through the large file API, not emulated).
MAX_FILE_BYTES = 256 * 1024 * 1024
DCCS_INLET_PROBLEM = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
DCCS_AUTH_PROBLEM = "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"
XED_LIST = ("application/vnd.adobe.xed-id+json", "application/vnd.adobe.xed+json")
XED_LOOKUP = (
    "application/vnd.adobe.xed+json",
    "application/vnd.adobe.xed-full+json",
    "application/vnd.adobe.xed-notext+json",
    "application/vnd.adobe.xed-full-notext+json",
    "application/vnd.adobe.xed-full-desc+json",
    "application/vnd.adobe.xed-deprecatefield+json",
)
_CONTENT_TYPE = re.compile(r"^application/vnd\.adobe\.xed(-full)?\+json;\s*version=\d+(\.\d+)?$")


@dataclass
class PeerConfig:
    """Who the peer is: the credentials it accepts and the organization it plays."""

    client_id: str = "pushgate-local-client"
    client_secret: str = "pushgate-local-secret"
    org_id: str = "PUSHGATELOCAL0000000000@AdobeOrg"
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


def _hex(length: int) -> str:
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
                        "profile": _profile_enabled(dataset),
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
                "field_groups": [_summary(r) for r in self.field_groups.values()],
                "schemas": [
                    {
                        **_summary(r),
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

    def check_platform(self, request: Request) -> None:
        """The headers every Platform API call carries (token, API key, organization, sandbox)."""
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
        # Requests without a sandbox name go to the default production sandbox, "prod".
        sandbox = request.headers.get("x-sandbox-name") or "prod"
        if sandbox != self.config.sandbox:
            raise bad_request(f"Sandbox '{sandbox}' is not available to {org}", 403, "Forbidden")

    def compiled_for(self, schema_id: str) -> xdm.CompiledSchema:
        compiled = self.compiled.get(schema_id)
        if compiled is None:
            try:
                compiled = xdm.compile_schema(self.schemas[schema_id], self.field_groups, self.config.tenant_id)
            except xdm.CompileError as exc:
                raise bad_request(f"Schema {schema_id} cannot be used: {exc}") from None
            self.compiled[schema_id] = compiled
        return compiled


def _summary(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {key: resource.get(key) for key in ("$id", "meta:altId", "version", "title")}


def _profile_enabled(dataset: Mapping[str, Any]) -> bool:
    return "enabled:true" in ((dataset.get("tags") or {}).get("unifiedProfile") or [])


def _json_body(request: Request) -> Any:
    """The JSON body of a POST, PUT or PATCH, which must say ``Content-Type: application/json``."""
    if request.mimetype not in ("application/json", "application/json-patch+json"):
        raise bad_request("A valid content-type must be specified")
    try:
        return json.loads(request.get_data(cache=True) or b"null")
    except ValueError:
        raise bad_request("The request body is not valid JSON") from None


# -- IMS -----------------------------------------------------------------------------------------------


def ims_token(state: PeerState, request: Request) -> Response:
    """OAuth server-to-server: ``client_credentials`` for the configured client (body or query)."""
    values = request.values
    if values.get("grant_type") != "client_credentials":
        raise ApiError(400, {"error": "unsupported_grant_type", "error_description": "unsupported grant_type"})
    if values.get("client_id") != state.config.client_id:
        raise ApiError(400, {"error": "invalid_client", "error_description": "invalid client_id parameter"})
    if values.get("client_secret") != state.config.client_secret:
        raise ApiError(400, {"error": "invalid_client", "error_description": "invalid client_secret parameter"})
    scope = values.get("scope") or ""
    if not scope.strip():
        raise ApiError(400, {"error": "invalid_scope", "error_description": "scope is required"})
    token = state.issue_token(state.config.client_id, scope)
    return json_response({"access_token": token, "token_type": "bearer", "expires_in": state.config.token_ttl})


# -- Schema Registry -----------------------------------------------------------------------------------


def _accept(request: Request) -> tuple[str, int | None]:
    media, _, params = (request.headers.get("Accept") or "").partition(";")
    match = re.search(r"version\s*=\s*(\d+)", params)
    return media.strip().lower(), int(match.group(1)) if match else None


def _invalid_accept(request: Request, expected: str) -> ApiError:
    supplied = request.headers.get("Accept") or ""
    return xdm_error(
        400,
        "XDM-1006-400",
        "Accept header invalid",
        f"The supplied Accept header is not valid: {supplied} - A valid Accept value should look like {expected}",
    )


def _container(state: PeerState, kind: str) -> dict[str, dict[str, Any]]:
    return state.schemas if kind == "schemas" else state.field_groups


def _find(resources: Mapping[str, dict[str, Any]], ref: str) -> dict[str, Any] | None:
    ref = unquote(ref)
    if ref.startswith("https:/") and not ref.startswith("https://"):
        ref = "https://" + ref.removeprefix("https:/")
    found = resources.get(ref)
    if found is None:
        found = next((r for r in resources.values() if r.get("meta:altId") == ref), None)
    return found


def _matches(resource: Mapping[str, Any], condition: str) -> bool:
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


def _list_resources(request: Request, resources: Iterable[dict[str, Any]], link: str) -> Response:
    media, _version = _accept(request)
    if media not in XED_LIST:
        raise _invalid_accept(request, "application/vnd.adobe.{xed|xdm}+json")
    items = [r for r in resources if all(_matches(r, c) for c in request.args.getlist("property"))]
    orderby = request.args.get("orderby")
    start = request.args.get("start")
    limit_arg = request.args.get("limit")
    if (start or limit_arg) and not orderby:
        raise bad_request("The start and limit parameters need an orderby parameter")
    if orderby:
        descending = orderby.startswith("-")
        key = orderby.lstrip("-+").split(",")[0]
        items.sort(key=lambda r: str(r.get(key, "")), reverse=descending)
        if start is not None:
            items = [r for r in items if (str(r.get(key, "")) < start if descending else str(r.get(key, "")) > start)]
    try:
        limit = min(int(limit_arg), 500) if limit_arg else 300
    except ValueError:
        raise bad_request("limit must be an integer between 0 and 500") from None
    page = items[:limit]
    next_start = str(page[-1].get(orderby.lstrip("-+").split(",")[0], "")) if orderby and len(items) > limit else None
    results = [_summary(r) for r in page] if media == XED_LIST[0] else [copy.deepcopy(r) for r in page]
    next_link = None
    if next_start is not None:
        next_link = {"href": f"{request.base_url}?orderby={orderby}&start={next_start}&limit={limit}"}
    return json_response(
        {
            "results": results,
            "_page": {"orderby": orderby, "next": next_start, "count": len(results)},
            "_links": {"next": next_link, "global_schemas": {"href": link}},
        }
    )


def _strip_text(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_text(v) for k, v in node.items() if k not in ("title", "description")}
    if isinstance(node, list):
        return [_strip_text(v) for v in node]
    return node


def _render(state: PeerState, resource: dict[str, Any], media: str) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    if "-full" in media:
        if resource.get("meta:resourceType") == "schemas":
            compiled = state.compiled_for(resource["$id"])
            out["properties"] = copy.deepcopy(compiled.json_schema["properties"])
            out["required"] = compiled.json_schema.get("required", [])
        else:
            out["properties"] = xdm.tenant_properties(resource)
        out.pop("allOf", None)
        out.pop("definitions", None)
        if media.endswith("-desc+json"):
            out["meta:descriptors"] = [d for d in state.descriptors.values() if d.get("xdm:sourceSchema") == out["$id"]]
    if "notext" in media:
        out = _strip_text(out)
    return out


def _lookup(state: PeerState, request: Request, resource: dict[str, Any] | None, ref: str, kind: str) -> Response:
    media, version = _accept(request)
    if media not in XED_LOOKUP:
        raise _invalid_accept(request, "application/vnd.adobe.xed+json; version={MAJOR_VERSION}")
    if version is None:
        raise xdm_error(
            400,
            "XDM-1007-400",
            "Accept header invalid",
            "version must be supplied in the accept header. Example: "
            "application/vnd.adobe.xed-full-notext+json; version=1",
        )
    if resource is None or int(str(resource.get("version", "1.0")).split(".")[0]) != version:
        raise xdm_error(
            404,
            "XDM-1010-404",
            "Resource not found",
            f"The requested {kind} resource {unquote(ref)} with version {version} is not found.",
        )
    return json_response(_render(state, resource, media))


def registry_stats(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    class_usage: dict[str, list[dict[str, Any]]] = {}
    for schema in state.schemas.values():
        class_usage.setdefault(schema.get("meta:class", ""), []).append(
            {k: schema.get(k) for k in ("$id", "title", "description")}
        )
    return json_response(
        {
            "imsOrg": state.config.org_id,
            "tenantId": state.config.tenant_id,
            "counts": {
                "schemas": len(state.schemas),
                "mixins": len(state.field_groups),
                "datatypes": 0,
                "classes": 0,
                "unions": sum(1 for s in state.schemas.values() if "union" in (s.get("meta:immutableTags") or [])),
            },
            "recentlyCreatedResources": [
                {k: r.get(k) for k in ("$id", "title", "description", "meta:resourceType", "version")}
                for r in [*state.schemas.values(), *state.field_groups.values()][-5:]
            ],
            "recentlyUpdatedResources": [],
            "classUsage": class_usage,
        }
    )


def registry_global_list(state: PeerState, request: Request, kind: str) -> Response:
    state.check_platform(request)
    base = f"{request.host_url.rstrip('/')}/data/foundation/schemaregistry/global/{kind}"
    if kind == "classes":
        return _list_resources(request, [c.resource() for c in xdm.CLASSES.values()], base)
    return _list_resources(request, [copy.deepcopy(g) for g in xdm.STANDARD_FIELD_GROUPS.values()], base)


def registry_global_get(state: PeerState, request: Request, kind: str, ref: str) -> Response:
    state.check_platform(request)
    if kind == "classes":
        resources = {c.id: c.resource() for c in xdm.CLASSES.values()}
    else:
        resources = {k: copy.deepcopy(v) for k, v in xdm.STANDARD_FIELD_GROUPS.items()}
    return _lookup(state, request, _find(resources, ref), ref, "class" if kind == "classes" else "mixin")


def registry_list(state: PeerState, request: Request, kind: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    base = f"{request.host_url.rstrip('/')}/data/foundation/schemaregistry/global/{kind}"
    return _list_resources(request, list(_container(state, kind).values()), base)


def registry_get(state: PeerState, request: Request, kind: str, ref: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    found = _find(_container(state, kind), ref)
    return _lookup(state, request, found, ref, "schema" if kind == "schemas" else "mixin")


def _title_taken(state: PeerState, title: str, own_id: str | None = None) -> None:
    for resource in [*state.schemas.values(), *state.field_groups.values()]:
        if resource.get("title") == title and resource["$id"] != own_id:
            raise xdm_error(
                400,
                "XDM-1521-400",
                "Title not unique",
                f"Object titles must be unique. An object {resource['$id']} already exists with the same title",
            )


def _registry_metadata(state: PeerState, created: int | None = None) -> dict[str, Any]:
    now = state.now_ms()
    return {
        "repo:createdDate": created or now,
        "repo:lastModifiedDate": now,
        "xdm:createdClientId": state.config.client_id,
        "xdm:lastModifiedClientId": state.config.client_id,
        "eTag": _hex(64),
    }


def _check_field_group(state: PeerState, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"].strip():
        raise bad_request("A field group needs a title")
    if not isinstance(body.get("meta:intendedToExtend"), list):
        raise bad_request("A field group needs meta:intendedToExtend, the list of classes it is compatible with")
    problems = xdm.namespace_problems(body, state.config.tenant_id)
    if problems:
        tenant = state.config.tenant_id
        raise xdm_error(
            400,
            "XDM-1021-400",
            "Namespace validation error",
            "A custom field is defined under an invalid namespace. All custom fields must be defined under a "
            f"top-level field named _{tenant}, and their names may not start with an underscore: {', '.join(problems)}",
        )
    return body


def _check_schema(state: PeerState, body: Any) -> tuple[dict[str, Any], xdm.CompiledSchema]:
    if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"].strip():
        raise bad_request("A schema needs a title")
    if not isinstance(body.get("allOf"), list) or not body["allOf"]:
        raise bad_request("A schema needs an allOf array with the $ref of its class and of its field groups")
    try:
        compiled = xdm.compile_schema(body, state.field_groups, state.config.tenant_id)
    except xdm.CompileError as exc:
        raise bad_request(str(exc)) from None
    return body, compiled


def _union_check(state: PeerState, schema: Mapping[str, Any], compiled: xdm.CompiledSchema) -> None:
    if "union" not in (schema.get("meta:immutableTags") or []):
        return
    if not compiled.has_identity_map and state.primary_path(str(schema.get("$id"))) is None:
        raise xdm_error(
            400,
            "XDM-1528-400",
            "Union descriptor validation error",
            "To participate in a union, a schema must include an identityMap fieldgroup or a primary identity "
            "descriptor.",
        )


def _schema_resource(
    state: PeerState, body: dict[str, Any], compiled: xdm.CompiledSchema, resource_id: str
) -> dict[str, Any]:
    cls = xdm.CLASSES[compiled.class_id]
    refs = [item["$ref"] for item in body["allOf"]]
    extends = [cls.id, *cls.extends, *[r for r in refs if r != cls.id]]
    out = {k: v for k, v in body.items() if not k.startswith("$") and k not in ("version", "meta:altId")}
    out.update(
        {
            "$id": resource_id,
            "meta:altId": xdm.alt_id(resource_id),
            "meta:resourceType": "schemas",
            "version": "1.0",
            "type": "object",
            "allOf": [{**item, "type": "object", "meta:xdmType": "object"} for item in body["allOf"]],
            "refs": refs,
            "meta:class": cls.id,
            "meta:abstract": False,
            "meta:extensible": False,
            "meta:extends": list(dict.fromkeys(extends)),
            "meta:containerId": "tenant",
            "imsOrg": state.config.org_id,
            "meta:xdmType": "object",
            "meta:registryMetadata": _registry_metadata(state),
            "meta:tenantNamespace": f"_{state.config.tenant_id}",
        }
    )
    return out


def _field_group_resource(state: PeerState, body: dict[str, Any], resource_id: str) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if not k.startswith("$") and k not in ("version", "meta:altId")}
    out.update(
        {
            "$id": resource_id,
            "meta:altId": xdm.alt_id(resource_id),
            "meta:resourceType": "mixins",
            "version": "1.0",
            "type": "object",
            "imsOrg": state.config.org_id,
            "meta:extensible": True,
            "meta:abstract": True,
            "meta:xdmType": "object",
            "meta:containerId": "tenant",
            "meta:registryMetadata": _registry_metadata(state),
            "meta:tenantNamespace": f"_{state.config.tenant_id}",
        }
    )
    return out


def _record_standard_refs(state: PeerState, compiled: xdm.CompiledSchema) -> None:
    state.standard_refs.update(compiled.open_refs)


def registry_create(state: PeerState, request: Request, kind: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    body = _json_body(request)
    tenant = state.config.tenant_id
    if kind == "fieldgroups":
        group = _check_field_group(state, body)
        _title_taken(state, group["title"])
        resource = _field_group_resource(state, group, f"https://ns.adobe.com/{tenant}/mixins/{_hex(48)}")
        state.field_groups[resource["$id"]] = resource
        return json_response(resource, 201)
    schema, compiled = _check_schema(state, body)
    _title_taken(state, schema["title"])
    resource = _schema_resource(state, schema, compiled, f"https://ns.adobe.com/{tenant}/schemas/{_hex(48)}")
    _union_check(state, resource, compiled)
    state.schemas[resource["$id"]] = resource
    state.compiled[resource["$id"]] = compiled
    _record_standard_refs(state, compiled)
    return json_response(resource, 201)


def _bump(version: Any) -> str:
    major, _, minor = str(version or "1.0").partition(".")
    return f"{major}.{int(minor or 0) + 1}"


def _pointer_parts(path: str) -> list[str]:
    if not path.startswith("/"):
        raise bad_request(f"JSON Patch path {path!r} must start with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def apply_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:  # noqa: PLR0912 -- one branch per op
    """JSON Patch (RFC 6902) ``add``, ``remove`` and ``replace``, as the registry's PATCH takes."""
    if not isinstance(operations, list):
        raise bad_request("A PATCH body is a JSON Patch array of operations")
    doc = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or operation.get("op") not in ("add", "remove", "replace"):
            raise bad_request(f"Unsupported JSON Patch operation: {operation}")
        parts = _pointer_parts(str(operation.get("path", "")))
        parent: Any = doc
        for part in parts[:-1]:
            try:
                parent = parent[int(part)] if isinstance(parent, list) else parent[part]
            except (KeyError, IndexError, ValueError):
                raise bad_request(f"JSON Patch path {operation.get('path')} does not exist") from None
        last = parts[-1]
        op = operation["op"]
        try:
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op == "add":
                    parent.insert(index, operation.get("value"))
                elif op == "remove":
                    del parent[index]
                else:
                    parent[index] = operation.get("value")
            elif isinstance(parent, dict):
                if op != "add" and last not in parent:
                    raise KeyError(last)
                if op == "remove":
                    del parent[last]
                else:
                    parent[last] = operation.get("value")
            else:
                raise KeyError(last)
        except (KeyError, IndexError, ValueError):
            raise bad_request(f"JSON Patch path {operation.get('path')} does not exist") from None
    return doc


def _used_by_datasets(state: PeerState, schema_id: str) -> bool:
    return any((d.get("schemaRef") or {}).get("id") == schema_id for d in state.datasets.values())


def _update(state: PeerState, kind: str, existing: dict[str, Any], body: Any) -> dict[str, Any]:
    """The new version of a resource after PUT (``body``) or PATCH (patched document)."""
    if kind == "fieldgroups":
        group = _check_field_group(state, body)
        _title_taken(state, group["title"], existing["$id"])
        resource = _field_group_resource(state, group, existing["$id"])
    else:
        schema, compiled = _check_schema(state, body)
        _title_taken(state, schema["title"], existing["$id"])
        resource = _schema_resource(state, schema, compiled, existing["$id"])
        old_tags = existing.get("meta:immutableTags") or []
        if any(tag not in (resource.get("meta:immutableTags") or []) for tag in old_tags):
            raise bad_request("Immutable tags cannot be removed once set")
        frozen = _used_by_datasets(state, existing["$id"]) or "union" in old_tags
        if frozen and not set(existing.get("refs") or []) <= set(resource.get("refs") or []):
            raise bad_request(
                "Breaking changes are not allowed on a schema used by a dataset or enabled for Profile: "
                "field groups can be added, not removed"
            )
        _union_check(state, resource, compiled)
        state.compiled[existing["$id"]] = compiled
        _record_standard_refs(state, compiled)
    resource["version"] = _bump(existing.get("version"))
    created = (existing.get("meta:registryMetadata") or {}).get("repo:createdDate")
    resource["meta:registryMetadata"] = _registry_metadata(state, created)
    return resource


def registry_change(state: PeerState, request: Request, kind: str, ref: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    resources = _container(state, kind)
    existing = _find(resources, ref)
    if existing is None:
        raise xdm_error(
            404, "XDM-1010-404", "Resource not found", f"The requested resource {unquote(ref)} is not found."
        )
    if request.method == "DELETE":
        if kind == "schemas" and _used_by_datasets(state, existing["$id"]):
            raise bad_request(f"Schema {existing['$id']} is used by a dataset and cannot be deleted")
        if kind == "fieldgroups" and any(existing["$id"] in (s.get("refs") or []) for s in state.schemas.values()):
            raise bad_request(f"Field group {existing['$id']} is used by a schema and cannot be deleted")
        del resources[existing["$id"]]
        state.compiled.pop(existing["$id"], None)
        return Response(status=204)
    body = _json_body(request)
    if request.method == "PATCH":
        body = apply_patch(existing, body)
        body["allOf"] = [{"$ref": item.get("$ref")} for item in body.get("allOf") or [] if isinstance(item, dict)]
    resource = _update(state, kind, existing, body)
    resources[existing["$id"]] = resource
    if kind == "fieldgroups":  # schemas using it see its new fields
        for schema in state.schemas.values():
            if existing["$id"] in (schema.get("refs") or []):
                state.compiled.pop(schema["$id"], None)
    return json_response(resource)


def _descriptor_checked(state: PeerState, body: Any, own_id: str | None = None) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("@type"), str):
        raise bad_request("A descriptor needs an @type")
    if "xdm:sourceSchema" not in body:
        raise bad_request("A descriptor needs xdm:sourceSchema")
    schema = state.schemas.get(str(body["xdm:sourceSchema"]))
    if schema is None:
        raise bad_request(f"Schema {body['xdm:sourceSchema']} is not found")
    if body["@type"] == "xdm:descriptorIdentity":
        path = body.get("xdm:sourceProperty")
        if not isinstance(path, str) or not path.startswith("/") or path.endswith("/"):
            raise bad_request("xdm:sourceProperty must be a path such as /personalEmail/address")
        if not body.get("xdm:namespace"):
            raise bad_request("An identity descriptor needs xdm:namespace")
        if state.compiled_for(schema["$id"]).has_path(path) is False:
            raise bad_request(f"xdm:sourceProperty {path} is not a field of schema {schema['$id']}")
        primary = state.primary_path(schema["$id"])
        if body.get("xdm:isPrimary") is True and primary is not None:
            holder = next(
                d["@id"]
                for d in state.descriptors.values()
                if d.get("xdm:sourceSchema") == schema["$id"] and d.get("xdm:isPrimary") is True
            )
            if holder != own_id:
                raise bad_request(f"Schema {schema['$id']} already has a primary identity ({primary})")
    return body


def descriptors_create(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    body = _descriptor_checked(state, _json_body(request))
    descriptor = {
        **body,
        "meta:containerId": "tenant",
        "imsOrg": state.config.org_id,
        "created": state.now_ms(),
        "updated": state.now_ms(),
        "@id": _hex(40),
    }
    state.descriptors[descriptor["@id"]] = descriptor
    return json_response(descriptor, 201)


def descriptors_list(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    media, _version = _accept(request)
    items = list(state.descriptors.values())
    if media == "application/vnd.adobe.xdm-v2+json":
        return json_response({"results": items, "_page": {"count": len(items), "next": None}})
    shapes: dict[str, Callable[[dict[str, Any]], Any]] = {
        "application/vnd.adobe.xdm-id+json": lambda d: d["@id"],
        "application/vnd.adobe.xdm-link+json": lambda d: f"/tenant/descriptors/{d['@id']}",
        "application/vnd.adobe.xdm+json": lambda d: d,
    }
    shape = shapes.get(media)
    if shape is None:
        raise bad_request("Unknown Accept format available ", 406, "NotAcceptableError")
    by_type: dict[str, list[Any]] = {}
    for descriptor in items:
        by_type.setdefault(descriptor["@type"], []).append(shape(descriptor))
    return json_response(by_type)


def descriptors_one(state: PeerState, request: Request, ref: str) -> Response:
    state.check_platform(request)
    descriptor = state.descriptors.get(ref)
    if descriptor is None:
        raise xdm_error(404, "XDM-1017-404", "Resource not found", f"The requested descriptor {ref} is not found.")
    if request.method == "GET":
        return json_response(descriptor)
    if request.method == "DELETE":
        del state.descriptors[ref]
        _forget_compiled(state, descriptor)
        return Response(status=204)
    body = _descriptor_checked(state, _json_body(request), ref)
    state.descriptors[ref] = {**body, "meta:containerId": "tenant", "imsOrg": state.config.org_id, "@id": ref}
    state.descriptors[ref]["created"] = descriptor.get("created")
    state.descriptors[ref]["updated"] = state.now_ms()
    return json_response({"@id": ref}, 201)


def _forget_compiled(state: PeerState, descriptor: Mapping[str, Any]) -> None:
    state.compiled.pop(str(descriptor.get("xdm:sourceSchema")), None)


# -- Catalog -------------------------------------------------------------------------------------------

_RESERVED = {
    "limit",
    "start",
    "properties",
    "property",
    "orderBy",
    "tags",
    "requestDataSource",
    "sort",
    "dataSet",
    "createdAfter",
    "createdBefore",
}


def _catalog_view(objects: Mapping[str, dict[str, Any]], request: Request, default_limit: int = 20) -> Response:
    items = list(objects.items())
    for key, raw in request.args.items(multi=True):
        if key in _RESERVED:
            continue
        negate = raw.startswith("!")
        wanted = raw.removeprefix("!").split(",")
        items = [(i, o) for i, o in items if (str(o.get(key, "")) in wanted) != negate]
    for condition in request.args.getlist("property"):
        items = [(i, o) for i, o in items if _matches(o, condition)]
    after, before = request.args.get("createdAfter", ""), request.args.get("createdBefore", "")
    if after.isdigit():
        items = [(i, o) for i, o in items if int(o.get("created", 0)) > int(after)]
    if before.isdigit():
        items = [(i, o) for i, o in items if int(o.get("created", 0)) < int(before)]
    for tag_filter in (request.args.get("tags") or "").split(","):
        if tag_filter:
            name, _, pattern = tag_filter.partition(":")
            regex = re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")
            items = [(i, o) for i, o in items if any(regex.match(v) for v in (o.get("tags") or {}).get(name, []))]
    order = request.args.get("orderBy") or request.args.get("sort")
    if order:
        for part in reversed(order.split(",")):
            direction, _, prop = part.rpartition(":")
            items.sort(key=lambda pair: str(pair[1].get(prop, "")), reverse=direction == "desc")
    try:
        limit = int(request.args.get("limit", default_limit))
        start = int(request.args.get("start", 0))
    except ValueError:
        raise bad_request("limit and start must be integers") from None
    if not 1 <= limit <= 100:
        raise bad_request("limit must be between 1 and 100")
    items = items[start : start + limit]
    properties = [p for p in (request.args.get("properties") or "").split(",") if p]
    if properties:
        return json_response({i: {p: o[p] for p in properties if p in o} for i, o in items})
    return json_response(dict(items))


def _schema_ref(state: PeerState, body: Mapping[str, Any]) -> dict[str, Any]:
    ref = body.get("schemaRef")
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
        raise bad_request("A dataset needs schemaRef.id, the $id of its XDM schema")
    if ref["id"] not in state.schemas:
        raise bad_request(f"Schema {ref['id']} is not found in the Schema Registry")
    if not _CONTENT_TYPE.match(str(ref.get("contentType", ""))):
        raise bad_request("schemaRef.contentType must look like application/vnd.adobe.xed-full+json;version=1")
    return ref


def _check_profile_tag(state: PeerState, dataset: Mapping[str, Any]) -> None:
    if _profile_enabled(dataset):
        schema = state.schemas[(dataset.get("schemaRef") or {})["id"]]
        if "union" not in (schema.get("meta:immutableTags") or []):
            raise bad_request("To enable profile datasets the schema should be valid")


def _check_tags(tags: Any) -> dict[str, list[str]]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in tags.values()
    ):
        raise bad_request('tags is an object of arrays of strings, such as {"unifiedProfile": ["enabled:true"]}')
    return tags


def datasets_create(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    body = _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
        raise bad_request("A dataset needs a name")
    schema_ref = _schema_ref(state, body)
    dataset_id = _hex(24)
    now = state.now_ms()
    dataset = {
        **{k: v for k, v in body.items() if k not in ("id",)},
        "tags": _check_tags(body.get("tags")),
        "schemaRef": schema_ref,
        "imsOrg": state.config.org_id,
        "created": now,
        "updated": now,
        "createdClient": state.config.client_id,
        "createdUser": f"{state.config.client_id}@techacct.adobe.com",
        "updatedUser": f"{state.config.client_id}@techacct.adobe.com",
        "version": "1.0.0",
        "state": "DRAFT",
        "dule": {},
        "statsCache": {},
        "files": f"@/dataSetFiles?dataSetId={dataset_id}",
    }
    _check_profile_tag(state, dataset)
    state.datasets[dataset_id] = dataset
    state.records.setdefault(dataset_id, [])
    return json_response([f"@/dataSets/{dataset_id}"], 201)


def datasets_list(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    return _catalog_view(state.datasets, request)


def _dataset_or_404(state: PeerState, dataset_id: str) -> dict[str, Any]:
    dataset = state.datasets.get(dataset_id)
    if dataset is None:
        raise bad_request(f"Dataset {dataset_id} is not found", 404, "NotFoundError")
    return dataset


def datasets_one(state: PeerState, request: Request, dataset_id: str) -> Response:
    state.check_platform(request)
    dataset = _dataset_or_404(state, dataset_id)
    if request.method == "GET":
        return _catalog_view({dataset_id: dataset}, request)
    if request.method == "DELETE":
        del state.datasets[dataset_id]
        return json_response([f"@/dataSets/{dataset_id}"])
    body = _json_body(request)
    if not isinstance(body, dict):
        raise bad_request("A PATCH body is an object of the properties to change")
    changed = {**dataset, **body, "updated": state.now_ms()}
    changed["tags"] = _check_tags(changed.get("tags"))
    changed["schemaRef"] = _schema_ref(state, changed) if "schemaRef" in body else dataset["schemaRef"]
    _check_profile_tag(state, changed)
    state.datasets[dataset_id] = changed
    return json_response([f"@/dataSets/{dataset_id}"])


def batches_list(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    dataset_id = request.args.get("dataSet")
    batches = [b for b in state.batches.values() if dataset_id is None or b.dataset_id == dataset_id]
    return _catalog_view({b.id: _batch_view(state, b, poll=False) for b in batches}, request)


def batches_one(state: PeerState, request: Request, batch_id: str) -> Response:
    state.check_platform(request)
    batch = state.batches.get(batch_id)
    if batch is None:
        raise bad_request(f"Batch {batch_id} is not found", 404, "NotFoundError")
    return json_response({batch_id: _batch_view(state, batch, poll=True)})


# -- Dataset Service: data usage labels ----------------------------------------------------------------


def labels(state: PeerState, request: Request, dataset_id: str) -> Response:
    state.check_platform(request)
    _dataset_or_404(state, dataset_id)
    current = state.labels.get(dataset_id)
    if request.method == "GET":
        entry = current or {"labels": [], "optionalLabels": [], "etag": _hex(32)}
        state.labels.setdefault(dataset_id, entry)
        body = {f"AEP:dataset:{dataset_id}": {"imsOrg": state.config.org_id, **_labels_out(entry)}}
        return json_response(body, headers={"etag": entry["etag"]})
    if request.method in ("PUT", "DELETE"):
        if current is None:
            raise bad_request(f"No labels exist for dataset {dataset_id}", 404, "NotFoundError")
        if not request.headers.get("If-Match"):
            raise bad_request("An If-Match header with the labels' etag is required", 428, "PreconditionRequired")
        if request.headers["If-Match"].strip('"') != current["etag"]:
            raise bad_request("If-Match does not match the current etag of the labels", 412, "PreconditionFailed")
    if request.method == "DELETE":
        state.labels[dataset_id] = {"labels": [], "optionalLabels": [], "etag": _hex(32)}
        return Response(status=200, headers={"etag": state.labels[dataset_id]["etag"]})
    body = _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
        raise bad_request("The body needs labels, a list of data usage labels such as C1")
    if not all(isinstance(label, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", label) for label in body["labels"]):
        raise bad_request("Labels are names such as C1, C12, I1 or S2")
    optional: Any = body.get("optionalLabels") or []
    if not isinstance(optional, list):
        raise bad_request("optionalLabels is a list")
    if request.method == "POST" and optional:
        raise bad_request("optionalLabels cannot be added with POST")
    entry = {"labels": list(dict.fromkeys(body["labels"])), "optionalLabels": optional, "etag": _hex(32)}
    entry["parents"] = body.get("parents") or []
    state.labels[dataset_id] = entry
    created = request.method == "POST"
    out = {**_labels_out(entry), "parents": entry["parents"]}
    out.update(
        {"code": "PES-201" if created else "PES-200", "message": "POST Successful" if created else "PUT Successful"}
    )
    return json_response(out, 201 if created else 200, headers={"etag": entry["etag"]})


def _labels_out(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"labels": entry["labels"], "optionalLabels": entry.get("optionalLabels", [])}


# -- Batch ingestion -----------------------------------------------------------------------------------


def _batch_view(state: PeerState, batch: Batch, *, poll: bool) -> dict[str, Any]:
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
    body = _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("datasetId"), str):
        raise bad_request("A batch needs a datasetId")
    _dataset_or_404(state, body["datasetId"])
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
    return json_response(_batch_view(state, batch, poll=False), 201)


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
    profile = _profile_enabled(dataset)
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
                {"record": record, "profile": _profile_outcome(state, compiled, record, primary, profile)}
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
            _store(
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


def _store(
    state: PeerState, dataset_id: str, record: Any, *, via: str, ref: dict[str, Any], profile: str, at: int
) -> None:
    state.records.setdefault(dataset_id, []).append(
        {"seq": next(state.sequence), "via": via, **ref, "receivedTimeMs": at, "profile": profile, "record": record}
    )


def _profile_outcome(
    state: PeerState, compiled: xdm.CompiledSchema, record: dict[str, Any], primary: str | None, profile: bool
) -> str:
    if not profile:
        return "not enabled"
    problem = xdm.profile_problem(compiled, record, primary)
    return f"dropped: {problem}" if problem else "ingested"


# -- Streaming ingestion -------------------------------------------------------------------------------


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
        or not _CONTENT_TYPE.match(str(schema_ref.get("contentType", "")))
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
    outcome = _profile_outcome(state, compiled, entity, state.primary_path(schema_ref["id"]), _profile_enabled(dataset))
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
        _store(state, outcome.dataset_id, outcome.record, via=via, ref=ref, profile=outcome.profile, at=received)


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


# -- routing -------------------------------------------------------------------------------------------

Handler = Callable[..., Response]
_SR = "/data/foundation/schemaregistry"
_KINDS = "<any(fieldgroups, mixins, schemas):kind>"

#: endpoint -> (fault category, handler)
ENDPOINTS: dict[str, tuple[str, Handler]] = {
    "ims_token": ("ims", ims_token),
    "registry_stats": ("registry", registry_stats),
    "registry_global_list": ("registry", registry_global_list),
    "registry_global_get": ("registry", registry_global_get),
    "registry_list": ("registry", registry_list),
    "registry_create": ("registry", registry_create),
    "registry_get": ("registry", registry_get),
    "registry_change": ("registry", registry_change),
    "descriptors_list": ("registry", descriptors_list),
    "descriptors_create": ("registry", descriptors_create),
    "descriptors_one": ("registry", descriptors_one),
    "datasets_list": ("catalog", datasets_list),
    "datasets_create": ("catalog", datasets_create),
    "datasets_one": ("catalog", datasets_one),
    "batches_list": ("catalog", batches_list),
    "batches_one": ("catalog", batches_one),
    "labels": ("labels", labels),
    "batch_create": ("batch", batch_create),
    "batch_file": ("batch", batch_file),
    "batch_action": ("batch", batch_action),
    "stream_one": ("streaming", stream_one),
    "stream_batch": ("streaming-batch", stream_batch),
}

ROUTES = Map(
    [
        Rule("/ims/token/v3", methods=["POST"], endpoint="ims_token"),
        Rule(f"{_SR}/stats", methods=["GET"], endpoint="registry_stats"),
        Rule(
            f"{_SR}/global/<any(classes, fieldgroups, mixins):kind>", methods=["GET"], endpoint="registry_global_list"
        ),
        Rule(
            f"{_SR}/global/<any(classes, fieldgroups, mixins):kind>/<path:ref>",
            methods=["GET"],
            endpoint="registry_global_get",
        ),
        Rule(f"{_SR}/tenant/descriptors", methods=["GET"], endpoint="descriptors_list"),
        Rule(f"{_SR}/tenant/descriptors", methods=["POST"], endpoint="descriptors_create"),
        Rule(f"{_SR}/tenant/descriptors/<ref>", methods=["GET", "PUT", "DELETE"], endpoint="descriptors_one"),
        Rule(f"{_SR}/tenant/{_KINDS}", methods=["GET"], endpoint="registry_list"),
        Rule(f"{_SR}/tenant/{_KINDS}", methods=["POST"], endpoint="registry_create"),
        Rule(f"{_SR}/tenant/{_KINDS}/<path:ref>", methods=["GET"], endpoint="registry_get"),
        Rule(f"{_SR}/tenant/{_KINDS}/<path:ref>", methods=["PUT", "PATCH", "DELETE"], endpoint="registry_change"),
        Rule("/data/foundation/catalog/<any(dataSets, datasets):_c>", methods=["GET"], endpoint="datasets_list"),
        Rule("/data/foundation/catalog/<any(dataSets, datasets):_c>", methods=["POST"], endpoint="datasets_create"),
        Rule(
            "/data/foundation/catalog/<any(dataSets, datasets):_c>/<dataset_id>",
            methods=["GET", "PATCH", "DELETE"],
            endpoint="datasets_one",
        ),
        Rule("/data/foundation/catalog/batches", methods=["GET"], endpoint="batches_list"),
        Rule("/data/foundation/catalog/batches/<batch_id>", methods=["GET"], endpoint="batches_one"),
        Rule(
            "/data/foundation/dataset/datasets/<dataset_id>/labels",
            methods=["GET", "POST", "PUT", "DELETE"],
            endpoint="labels",
        ),
        Rule("/data/foundation/import/batches", methods=["POST"], endpoint="batch_create"),
        Rule("/data/foundation/import/batches/<batch_id>", methods=["POST"], endpoint="batch_action"),
        Rule(
            "/data/foundation/import/batches/<batch_id>/<any(datasets, dataSets):_d>/<dataset_id>/files/<path:name>",
            methods=["PUT"],
            endpoint="batch_file",
        ),
        Rule("/collection/batch/<inlet>", methods=["POST"], endpoint="stream_batch"),
        Rule("/collection/<inlet>", methods=["POST"], endpoint="stream_one"),
    ],
    merge_slashes=False,
    strict_slashes=False,
)
