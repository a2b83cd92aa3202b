"""A local Adobe Experience Platform for development and tests: IMS, Schema Registry, Catalog, data
usage labels, batch ingestion, streaming ingestion and the Privacy Service on one plain-HTTP base
URL on loopback.

It speaks Adobe's APIs as documented on experienceleague.adobe.com and developer.adobe.com, so the
sync module's client works against it exactly as against Adobe: point ``PUSHGATE_AEP_IMS_URL``,
``PUSHGATE_AEP_PLATFORM_URL`` and ``PUSHGATE_AEP_STREAMING_URL`` all at :attr:`PlatformPeer.url`
(:meth:`PlatformPeer.environment` gives every setting). It holds everything in memory.

Adobe's endpoints
-----------------
- ``POST /ims/token/v3`` (form or query: ``grant_type=client_credentials``, ``client_id``,
  ``client_secret``, ``scope``) -> ``{access_token, token_type: "bearer", expires_in}``; wrong
  credentials -> 400 ``{"error": "invalid_client", ...}``. Tokens expire after ``token_ttl`` seconds.
- Every ``/data/foundation/...`` call needs ``Authorization: Bearer <live token>`` (else 401
  ``{"error_code": "401013", "message": "Oauth token is not valid"}``, or ``403010`` when missing),
  ``x-api-key`` = the client id (403 ``403000``/``403003``), ``x-gw-ims-org-id`` = the org (400
  ``400003`` when missing, 403 ``403025`` when wrong) and ``x-sandbox-name`` (absent = ``prod``).
- Schema Registry, ``/data/foundation/schemaregistry``: ``GET /stats`` (``tenantId``); ``GET|POST
  /tenant/fieldgroups`` and ``/tenant/schemas`` (``/mixins`` too), ``GET|PUT|PATCH|DELETE
  /tenant/{kind}/{meta:altId or URL-encoded $id}``; ``GET|POST /tenant/descriptors``, ``GET|PUT|
  DELETE /tenant/descriptors/{@id}``; ``GET /global/classes|fieldgroups[/{id}]`` for the standard
  pieces it holds. Lists need ``Accept: application/vnd.adobe.xed-id+json`` (or ``xed+json``), answer
  ``{results, _page: {orderby, next, count}, _links}`` and take ``property=title==X`` (also ``!=``,
  ``<``, ``>``, ``<=``, ``>=``, bare name), ``orderby``, ``start``, ``limit``; lookups need a version
  (``application/vnd.adobe.xed+json; version=1``; ``xed-full`` resolves the fields). Titles are
  unique across field groups and schemas (a second one -> 400 ``XDM-1521-400`` "Title not unique").
  Custom fields live under ``_{tenantId}`` (else 400 ``XDM-1021-400``). Enabling a schema for Profile
  (PATCH ``[{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}]``) needs an identity map
  or a primary identity descriptor (else 400 ``XDM-1528-400``); immutable tags stay.
- Catalog, ``/data/foundation/catalog``: ``POST /dataSets`` (``name``, ``schemaRef {id, contentType}``,
  optional ``tags.unifiedProfile: ["enabled:true"]``, which needs a union schema) -> 201
  ``["@/dataSets/{id}"]``; ``GET /dataSets`` (``name=a,b``, ``property=name==a``, ``properties=``,
  ``limit`` (20, at most 100), ``start``, ``orderBy``, ``tags=``) and ``GET|PATCH|DELETE
  /dataSets/{id}`` answer objects keyed by id; ``GET /batches[/{id}]`` (``{id: {status, errors,
  metrics, ...}}``). Dataset names need not be unique: find by name before creating.
- Dataset Service labels, ``/data/foundation/dataset/datasets/{id}/labels``: ``GET`` (``etag`` header),
  ``POST`` (first labels, 201 ``PES-201``), ``PUT`` and ``DELETE`` with ``If-Match: <etag>``.
- Batch ingestion, ``/data/foundation/import/batches``: ``POST`` ``{datasetId, inputFormat: {format:
  "json"}}`` (optional ``isMultiLineJson``, ``partialIngestionPercentage``,
  ``enableErrorDiagnostics``) -> 201 with ``status: "loading"``; ``PUT
  /batches/{id}/datasets/{datasetId}/files/{name}`` (``application/octet-stream``, JSON lines unless
  ``isMultiLineJson``, at most 256 MB); ``POST /batches/{id}?action=COMPLETE`` (safe to repeat) or
  ``ABORT``. The Catalog then answers ``staging`` for ``batch_staging_polls`` GETs, then ``success``
  or ``failed`` with ``errors`` (``INGEST-1401-400`` unparsable rows, ``INGEST-1555-400`` missing
  required fields, ``INGEST-1211-400``/``1212-400`` summaries, ``106`` empty) and ``metrics``.
- Streaming, ``POST /collection/{inletId}`` (one message, ``?syncValidation=true``) and ``POST
  /collection/batch/{inletId}`` (``{"messages": [...]}`` -> 207 ``{inletId, batchId,
  receivedTimeMs, responses: [{xactionId} | {statusCode, message}]}``). With
  ``require_streaming_auth`` (an authenticated connection) a live bearer token is needed (401
  otherwise). Over 1 MB (1,000,000 bytes, ``max_request_bytes``) -> 413. Each envelope is checked
  as the Data Collection Core Service does (header ``schemaRef {id, contentType}``, ``imsOrgId``,
  ``datasetId`` of a known dataset whose schema is that one, ``source.name`` if given,
  ``body.xdmMeta.schemaRef``, ``body.xdmEntity``), then the record against the dataset's schema
  (``_id``, ISO 8601 ``timestamp``, ``identityMap`` shape, tenant fields only under
  ``_{tenantId}``, no extraneous keys). For a Profile-enabled dataset, a record Profile would drop
  (ExperienceEvent over 10 KB, profile record over 100 KB, no primary identity) is reported as
  failed, unless ``strict_profile_limits`` is off.
- Privacy Service, ``/data/core/privacy/jobs`` (the Platform's headers, but ``x-sandbox-name`` is
  ignored): ``POST`` ``{companyContexts: [{namespace: "imsOrgID", value: <org>}], users: [{key,
  action: ["access"|"delete"], userIDs: [{namespace, value, type}]}] (1 to 1000 users, 1 to 9 ids
  each), include: [products], regulation, expandIds?, priority?}`` -> ``{jobs: [{jobId, customer:
  {user: {key, action: [action]}}}], requestStatus: 1, totalRecords}``, one job per user and
  action; ``GET ?regulation=gdpr[&page&size]`` lists them (``{items, page, size, totalRecords}``),
  ``GET /{jobId}`` shows one (``jobId``, ``userKey``, ``action``, ``status: processing``,
  ``userIds``, ``regulation``, ...). An invalid request gets 400 with ``detail`` saying why.

Control and inspection API (no auth; not Adobe's)
-------------------------------------------------
- ``GET /_peer/state``: config, schemas, field groups, descriptors, datasets with record counts
  (``records``, ``distinct_ids``, ``duplicates``, ``failed``, ``profile_dropped``), batches, Privacy
  Service jobs (``privacy_jobs``, identities included), pending faults and call counts per category.
- ``GET /_peer/records?dataset=ID[&failed=true]``: every accepted (or failed) record in arrival
  order: ``{seq, via, xactionId|batchId, receivedTimeMs, profile, record}`` -- duplicates
  included, so tests can check exactly-once delivery by ``_id``.
- ``GET /_peer/requests``: the last 2000 calls ``{method, path, category, status, at}``.
- ``POST /_peer/reset``: forget everything (tokens too); ``POST /_peer/time {"advance": seconds}``:
  move the peer's clock (token expiry).
- ``POST /_peer/faults``, ``GET /_peer/faults``, ``DELETE /_peer/faults``: fault injection. A fault
  is ``{"path": "ims"|"registry"|"catalog"|"labels"|"batch"|"streaming"|"streaming-batch"|"privacy",
  "status": 401|403|413|429|500|502|503|504, "times": N (1), "retry_after": seconds (1, on 429 and
  503 as a Retry-After header), "slow": seconds}`` and answers the next N calls of that category
  with Adobe's body for that status; ``"slow"`` alone delays them. For ``streaming-batch``,
  ``"partial": {"every": 3}`` (or ``{"ids": ["<_id>", ...]}``, optional ``"status"`` = 503) rejects
  every third message (or those ``_id`` s) of the next N calls with a retryable per-message status.
  In the same process: ``peer.add_fault(path=..., ...)``. The control endpoints are
  :mod:`sync.peers.platform_control`, the faults :mod:`sync.peers.platform_faults`.

Behaviour switches (:class:`PeerConfig`): ``token_ttl``, ``require_streaming_auth``,
``reject_invalid_records`` (False: Adobe's asynchronous validation, bad records are accepted then
listed with ``failed=true``), ``strict_profile_limits`` (False: accepted, marked dropped by Profile),
``batch_staging_polls``, ``max_request_bytes``, ``max_file_bytes``.

From a shell: ``python -m sync.peers.platform --port 8445`` prints ``Platform peer listening on
http://127.0.0.1:8445`` first, then the ``PUSHGATE_AEP_*`` settings to export. In a test:
``with PlatformPeer(PeerConfig(...)).start() as peer: peer.url, peer.state``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import FrameType
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from sync.peers.platform_api.routes import ENDPOINTS, ROUTES
from sync.peers.platform_api.state import ApiError, Fault, PeerConfig, PeerState, json_response
from sync.peers.platform_api.streaming import stream_batch
from sync.peers.platform_control import control
from sync.peers.platform_faults import fault_response, make_fault, partial_failures

__all__ = ["Fault", "PeerConfig", "PeerState", "PlatformPeer", "main"]

log = logging.getLogger("pushgate.peers.platform")


class PlatformPeer:
    """The local Experience Platform as a threaded WSGI server on loopback (port 0 = any free port)."""

    def __init__(self, config: PeerConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or PeerConfig()
        self.state = PeerState(self.config)
        self.host = host
        self.requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> PlatformPeer:
        self._server = make_server(self.host, self.requested_port, self.wsgi, threaded=True)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), name="platform-peer", daemon=True
        )
        self._thread.start()
        log.info("Platform peer listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> PlatformPeer:
        return self if self._server is not None else self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Platform peer is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The gateway settings that point the sync module at this peer."""
        return {
            "PUSHGATE_AEP_IMS_URL": self.url,
            "PUSHGATE_AEP_PLATFORM_URL": self.url,
            "PUSHGATE_AEP_STREAMING_URL": self.url,
            "PUSHGATE_AEP_CLIENT_ID": self.config.client_id,
            "PUSHGATE_AEP_CLIENT_SECRET": self.config.client_secret,
            "PUSHGATE_AEP_ORG_ID": self.config.org_id,
            "PUSHGATE_AEP_SANDBOX": self.config.sandbox,
            "PUSHGATE_AEP_TENANT_ID": self.config.tenant_id,
            "PUSHGATE_AEP_INLET_ID": self.config.inlet_id,
        }

    # -- for tests in the same process ---------------------------------------------------------------

    def records(self, dataset_id: str, *, failed: bool = False) -> list[dict[str, Any]]:
        return self.state.dataset_records(dataset_id, failed=failed)

    def privacy_jobs(self) -> list[dict[str, Any]]:
        """The Privacy Service jobs received, in order (each with its ``userIds``)."""
        with self.state.lock:
            return copy.deepcopy(list(self.state.privacy_jobs.values()))

    def add_fault(self, **spec: Any) -> Fault:
        """``peer.add_fault(path="streaming-batch", status=503, times=2)``: as ``POST /_peer/faults``."""
        fault = make_fault(spec)
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    # -- HTTP ----------------------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        category = "control"
        try:
            if request.path.startswith("/_peer/"):
                response = control(self.state, request)
            else:
                category, response = self._adobe(request)
        except ApiError as exc:
            response = exc.response()
        except Exception:  # a bug in the peer must still answer, and be seen
            log.exception("Platform peer failed on %s %s", request.method, request.path)
            response = json_response({"title": "Internal Server Error", "status": 500}, 500)
        if category != "control":
            with self.state.lock:
                self.state.requests.append(
                    {
                        "at": self.state.now_ms(),
                        "method": request.method,
                        "path": request.path,
                        "category": category,
                        "status": response.status_code,
                    }
                )
        return response(environ, start_response)

    def _take_fault(self, category: str) -> Fault | None:
        with self.state.lock:
            for fault in self.state.faults:
                if fault.category == category:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.state.faults.remove(fault)
                    return fault
        return None

    def _adobe(self, request: Request) -> tuple[str, Response]:
        adapter = ROUTES.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except NotFound:
            detail = f"No such endpoint: {request.method} {request.path}"
            return "unknown", json_response({"title": "NotFoundError", "status": 404, "detail": detail}, 404)
        except MethodNotAllowed:
            detail = f"Method {request.method} is not allowed on {request.path}"
            return "unknown", json_response({"title": "MethodNotAllowed", "status": 405, "detail": detail}, 405)
        category, handler = ENDPOINTS[str(endpoint)]
        arguments = {key: value for key, value in values.items() if not key.startswith("_")}
        fault = self._take_fault(category)
        if fault is not None and fault.slow:
            time.sleep(fault.slow)
        if fault is not None and fault.status is not None:
            request.get_data()  # read the body, as a real server does before answering
            return category, fault_response(self.state, fault)
        try:
            with self.state.lock:
                if fault is not None and (fault.every is not None or fault.ids):
                    return category, stream_batch(self.state, request, fail=partial_failures(fault), **arguments)
                return category, handler(self.state, request, **arguments)
        except ApiError as exc:
            return category, exc.response()


def main(argv: Sequence[str] | None = None) -> int:
    defaults = PeerConfig()
    parser = argparse.ArgumentParser(
        prog="python -m sync.peers.platform",
        description="A local Adobe Experience Platform (IMS, Schema Registry, Catalog, ingestion).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8445, help="0 picks a free port (printed on start)")
    parser.add_argument("--client-id", default=defaults.client_id, help="OAuth client id, also the x-api-key")
    parser.add_argument("--client-secret", default=defaults.client_secret)
    parser.add_argument("--org", default=defaults.org_id, help="IMS organization id (x-gw-ims-org-id)")
    parser.add_argument("--tenant", default=defaults.tenant_id, help="tenant id: custom fields live under _{tenant}")
    parser.add_argument("--sandbox", default=defaults.sandbox)
    parser.add_argument("--inlet", default=defaults.inlet_id, help="streaming inlet (connection) id")
    parser.add_argument("--token-ttl", type=int, default=defaults.token_ttl, help="seconds an IMS token lives")
    parser.add_argument("--no-streaming-auth", action="store_true", help="an unauthenticated streaming connection")
    parser.add_argument(
        "--async-validation",
        action="store_true",
        help="accept streamed records that fail XDM validation and keep them as failed (Adobe's default)",
    )
    parser.add_argument(
        "--lenient-profile", action="store_true", help="accept records Profile would drop, and mark them dropped"
    )
    args = parser.parse_args(argv)
    config = PeerConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        org_id=args.org,
        tenant_id=args.tenant,
        sandbox=args.sandbox,
        inlet_id=args.inlet,
        token_ttl=args.token_ttl,
        require_streaming_auth=not args.no_streaming_auth,
        reject_invalid_records=not args.async_validation,
        strict_profile_limits=not args.lenient_profile,
    )
    peer = PlatformPeer(config, host=args.host, port=args.port)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with peer.start():
        print(f"Platform peer listening on {peer.url}", flush=True)
        print("point the sync module at it with:", flush=True)
        for key, value in peer.environment().items():
            print(f"export {key}={value}", flush=True)
        print(
            f"inspection: {peer.url}/_peer/state  (module docstring: python -m pydoc sync.peers.platform)", flush=True
        )
        while not stop.wait(0.5):
            pass
    print("Platform peer stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
