"""A faithful local APNs peer: HTTP/2 over TLS with exact frames, header and JWT checks, error injection.

It answers ``POST /3/device/{token}`` the way Apple does, frame for frame, so the real client
library (aioapns) runs unchanged against it:

- the first SETTINGS frame announces ``MAX_CONCURRENT_STREAMS`` (1000), so a burst never opens more
  streams than allowed;
- HTTP/2 with prior knowledge over TLS (aioapns offers no ALPN; ``h2`` is also accepted via ALPN);
- success is one HEADERS frame (``:status 200``, ``apns-id``) with END_STREAM and no DATA frame;
- an error is HEADERS (status, ``apns-id``, ``content-type: application/json``) plus exactly one
  DATA frame ``{"reason": ...}`` (and ``"timestamp"`` in milliseconds for 410) with END_STREAM;
- request bodies are acknowledged as they arrive; response bodies wait for the client's flow-control
  window like a real server's would.

Checks, in order, with Apple's reasons: method (405 MethodNotAllowed), path (404 BadPath, 400
MissingDeviceToken), duplicate headers (DuplicateHeaders), ``apns-id`` format (BadMessageId),
authentication (403 MissingProviderToken, InvalidProviderToken, ExpiredProviderToken), device token
format (BadDeviceToken: hex, 64 to 200 digits), topic (MissingTopic, TopicDisallowed), push type
(InvalidPushType), priority (BadPriority; background pushes must use 5), expiration
(BadExpirationDate), collapse id (BadCollapseId, over 64 bytes), payload (PayloadEmpty, 413
PayloadTooLarge over 4096 bytes or 5120 for VoIP, and 400 BadPayload for a body that is not a JSON
object: Apple documents no reason for that case, this name is the emulator's).

Authentication. Token: ``authorization: bearer <ES256 JWT>`` with ``kid`` and ``iss``, ``iat`` at
most one hour old; its signature is verified with the public key that ``key_lookup(key_id,
team_id)`` returns (None: unknown key). Without a ``key_lookup`` the emulator checks the token's
form and age only, so any developer key works against it. Certificate: a TLS client certificate
signed by the emulator's CA (see :meth:`LocalTLS.issue_client_cert`) and no bearer token; its topic
is the subject's UID or the part of its common name after ": ".

Error injection by device-token prefix (tokens are hex, so prefixes are hex, eight digits so random
tokens practically never hit one):

=========== ===================================================================================
prefix      answer
=========== ===================================================================================
e4000000    400 BadDeviceToken, always
e4000001    400 DeviceTokenNotForTopic, always
e4100000    410 Unregistered with a timestamp (ms), always
e4290000    429 TooManyRequests, always
e5000000    500 InternalServerError, always
e5030000    503 ServiceUnavailable, always
f4290000    429 TooManyRequests for the first request of that exact token, then success
f5000000    500 InternalServerError for the first request of that exact token, then success
f5030000    503 ServiceUnavailable for the first request of that exact token, then success
d0000000    success after ``slow_delay`` seconds (default 3): request timeouts
c0000000    GOAWAY (NO_ERROR, ``{"reason": "Shutdown"}``) and the connection is closed, always
fc000000    GOAWAY for the first request of that exact token, then success
=========== ===================================================================================

:data:`TOKEN_PREFIXES` holds the same table for generated documentation. A GOAWAY's
``last_stream_id`` is the last stream handled before the triggering one: that stream and any
later ones were not processed, so a client may safely send them again.

Every request, accepted or not, is recorded in an :class:`~push.emulators.inbox.Inbox` under
``"ios"`` when its answer is decided (a slow request when its answer is sent): ``token``,
``headers`` (without ``authorization``), ``payload`` (parsed JSON or None), ``status`` (None for a
GOAWAY), ``reason``, ``received_at``, ``apns_id``, ``auth`` ("token" | "certificate"), ``topic``,
``key_id``/``team_id``, ``size``. Another process reads it over the same port:
``GET /_emulator/inbox[?limit=N]`` (the last N, oldest first) and ``DELETE /_emulator/inbox``
(no authentication; not an Apple path).

Run it alone (the benchmark does)::

    python -m push.emulators.apns --port 8443 --tls-dir instance/emulators/tls [--topic com.example.app]

It prints ``APNs emulator listening on https://127.0.0.1:8443`` and the CA to trust.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes

from push.emulators.inbox import Inbox, now_iso
from push.emulators.tls import LocalTLS, local_tls

PLATFORM = "ios"
GOAWAY_GRACE = 1.0  # seconds a connection stays open (reading, ignoring) after its GOAWAY
MAX_PAYLOAD = 4096
MAX_VOIP_PAYLOAD = 5120
MAX_COLLAPSE_ID = 64
TOKEN_MAX_AGE = 3600  # seconds: Apple refuses provider tokens older than one hour
PUSH_TYPES = frozenset(
    {"alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk"}
)
# A topic for these push types is the bundle id plus a suffix.
TOPIC_SUFFIXES = (".voip", ".complication", ".pushkit.fileprovider", ".push-type.liveactivity", ".voip-ptt")
PRIORITIES = frozenset({"1", "5", "10"})
TOKEN_RE = re.compile(r"^(?:[0-9a-fA-F]{2}){32,100}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PATH_PREFIX = "/3/device/"
INBOX_PATH = "/_emulator/inbox"  # not Apple's: lets a process read what this one received

KeyLookup = Callable[[str, str], "EllipticCurvePublicKey | str | bytes | None"]
Behaviour = Literal["error", "slow", "goaway"]


@dataclass(frozen=True)
class Injection:
    """What a token prefix makes the emulator do."""

    behaviour: Behaviour
    status: int | None = None
    reason: str | None = None
    once: bool = False  # only the first request of the exact token; later ones succeed
    description: str = ""


TOKEN_PREFIXES: dict[str, Injection] = {
    "e4000000": Injection("error", 400, "BadDeviceToken", description="400 BadDeviceToken, always"),
    "e4000001": Injection("error", 400, "DeviceTokenNotForTopic", description="400 DeviceTokenNotForTopic, always"),
    "e4100000": Injection("error", 410, "Unregistered", description="410 Unregistered with a timestamp, always"),
    "e4290000": Injection("error", 429, "TooManyRequests", description="429 TooManyRequests, always"),
    "e5000000": Injection("error", 500, "InternalServerError", description="500 InternalServerError, always"),
    "e5030000": Injection("error", 503, "ServiceUnavailable", description="503 ServiceUnavailable, always"),
    "f4290000": Injection("error", 429, "TooManyRequests", once=True, description="429 once, then success"),
    "f5000000": Injection("error", 500, "InternalServerError", once=True, description="500 once, then success"),
    "f5030000": Injection("error", 503, "ServiceUnavailable", once=True, description="503 once, then success"),
    "d0000000": Injection("slow", description="success after the slow delay (default 3 s)"),
    "c0000000": Injection("goaway", description="GOAWAY and connection closed, always"),
    "fc000000": Injection("goaway", once=True, description="GOAWAY once, then success"),
}
PREFIX_LENGTH = 8


def injection_for(token: str) -> Injection | None:
    return TOKEN_PREFIXES.get(token[:PREFIX_LENGTH].lower())


@dataclass
class _Answer:
    status: int | None  # None: no HTTP answer (GOAWAY)
    reason: str | None = None
    timestamp: int | None = None
    behaviour: Behaviour | None = None


@dataclass
class _Stream:
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    oversized: bool = False


@dataclass
class _Request:
    """A complete request as the checks see it; ``record`` becomes its inbox entry."""

    method: str
    path: str
    token: str
    headers: dict[str, str]
    duplicate: bool
    body: bytes
    oversized: bool
    payload: Any
    client_topic: str | None
    has_client_cert: bool
    record: dict[str, Any]

    @property
    def apns_id(self) -> str | None:
        return self.headers.get("apns-id")

    @classmethod
    def parse(cls, stream: _Stream, client_topic: str | None, has_client_cert: bool) -> _Request:
        pseudo = {k: v for k, v in stream.headers if k.startswith(":")}
        headers: dict[str, str] = {}
        duplicate = False
        for name, value in stream.headers:
            if not name.startswith(":"):
                duplicate = duplicate or name in headers
                headers[name] = value
        path = pseudo.get(":path", "")
        token = path[len(PATH_PREFIX) :] if path.startswith(PATH_PREFIX) else ""
        body = bytes(stream.body)
        payload: Any = None
        if body and not stream.oversized:
            with contextlib.suppress(ValueError):
                payload = json.loads(body)
        record: dict[str, Any] = {
            "token": token,
            "headers": headers,
            "payload": payload,
            "path": path,
            "size": len(body),
            "auth": None,
        }
        return cls(
            pseudo.get(":method", ""),
            path,
            token,
            headers,
            duplicate,
            body,
            stream.oversized,
            payload,
            client_topic,
            has_client_cert,
            record,
        )


def _first_failure(status: int, rules: tuple[tuple[bool, str], ...]) -> _Answer | None:
    return next((_Answer(status, reason) for failed, reason in rules if failed), None)


class ApnsEmulator:
    """The APNs peer. ``start`` it on a running loop; one instance serves any number of connections."""

    def __init__(
        self,
        tls: LocalTLS,
        *,
        inbox: Inbox | None = None,
        key_lookup: KeyLookup | None = None,
        topics: Collection[str] = (),
        slow_delay: float = 3.0,
        max_concurrent_streams: int = 1000,
        client_ca: Path | None = None,
    ) -> None:
        self.tls = tls
        self.inbox = inbox if inbox is not None else Inbox()
        self.key_lookup = key_lookup
        self.topics = frozenset(topics)
        self.slow_delay = slow_delay
        self.max_concurrent_streams = max_concurrent_streams
        self.client_ca = client_ca if client_ca is not None else tls.ca_path
        self.port: int | None = None
        self.host = "127.0.0.1"
        self.handled = 0  # requests answered (or abandoned) since start, beyond the inbox's limit
        self._server: asyncio.Server | None = None
        self._connections: set[_ServerConnection] = set()
        self._once_lock = threading.Lock()
        self._failed_once: set[str] = set()
        self._verified: OrderedDict[str, tuple[str, str, int]] = OrderedDict()  # JWT -> kid, iss, iat

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[asyncio.Server, int]:
        """Listen on ``host:port`` (0: any free port); returns the server and the bound port."""
        loop = asyncio.get_running_loop()
        context = self.tls.server_context(alpn=("h2",), client_ca=self.client_ca)
        self._server = await loop.create_server(lambda: _ServerConnection(self), host, port, ssl=context)
        self.host = host
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self._server, self.port

    @property
    def open_connections(self) -> int:
        """How many client connections are open now."""
        return len(self._connections)

    async def stop(self) -> None:
        """Stop listening, close every connection and wait until they are gone."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        connections = list(self._connections)
        for connection in connections:
            connection.abort_pending()
            if connection.transport is not None:
                connection.transport.close()
        if connections:
            await asyncio.wait([c.lost for c in connections], timeout=2)
            for connection in connections:
                if not connection.lost.done() and connection.transport is not None:
                    connection.transport.abort()

    def reset(self) -> None:
        """Forget fail-once tokens and clear the inbox."""
        with self._once_lock:
            self._failed_once.clear()
        self.inbox.clear()

    # -- request handling -------------------------------------------------------------------------

    def decide(self, stream: _Stream, client_topic: str | None, has_client_cert: bool) -> tuple[_Answer, _Request]:
        """The answer to one complete request, and the request as parsed (its record without status)."""
        request = _Request.parse(stream, client_topic, has_client_cert)
        for check in (self._check_route, self._check_auth, self._check_headers, self._check_payload):
            answer = check(request)
            if answer is not None:
                return answer, request
        return self._inject(request.token), request

    def _check_route(self, request: _Request) -> _Answer | None:
        token = request.token
        if request.method != "POST":
            return _Answer(405, "MethodNotAllowed")
        if not request.path.startswith(PATH_PREFIX) or "/" in token or "?" in token:
            return _Answer(404, "BadPath")
        rules = (
            (not token, "MissingDeviceToken"),
            (request.duplicate, "DuplicateHeaders"),
            (request.apns_id is not None and not UUID_RE.match(request.apns_id), "BadMessageId"),
        )
        return _first_failure(400, rules)

    def _check_auth(self, request: _Request) -> _Answer | None:
        error = self._authenticate(request.headers.get("authorization"), request.has_client_cert, request.record)
        return _Answer(403, error) if error else None

    def _check_headers(self, request: _Request) -> _Answer | None:
        headers = request.headers
        push_type = headers.get("apns-push-type")
        priority = headers.get("apns-priority")
        expiration = headers.get("apns-expiration")
        collapse_id = headers.get("apns-collapse-id")
        rules = (
            (not TOKEN_RE.match(request.token), "BadDeviceToken"),
            (push_type is not None and push_type not in PUSH_TYPES, "InvalidPushType"),
            (priority is not None and priority not in PRIORITIES, "BadPriority"),
            (push_type == "background" and priority != "5", "BadPriority"),  # an omitted priority means 10
            (expiration is not None and not expiration.isdigit(), "BadExpirationDate"),
            (collapse_id is not None and len(collapse_id.encode()) > MAX_COLLAPSE_ID, "BadCollapseId"),
        )
        failure = _first_failure(400, rules[:1])
        if failure is None:
            topic_error = self._check_topic(headers, request.record, request.client_topic)
            failure = _Answer(400, topic_error) if topic_error else _first_failure(400, rules[1:])
        return failure

    def _check_payload(self, request: _Request) -> _Answer | None:
        limit = MAX_VOIP_PAYLOAD if request.headers.get("apns-push-type") == "voip" else MAX_PAYLOAD
        if not request.body:
            return _Answer(400, "PayloadEmpty")
        if request.oversized or len(request.body) > limit:
            return _Answer(413, "PayloadTooLarge")
        if not isinstance(request.payload, dict):
            return _Answer(400, "BadPayload")
        return None

    def _authenticate(self, authorization: str | None, has_client_cert: bool, record: dict[str, Any]) -> str | None:
        if authorization is None:
            if has_client_cert:
                record["auth"] = "certificate"
                return None
            return "MissingProviderToken"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "InvalidProviderToken"
        record["auth"] = "token"
        cached = self._verified.get(token)
        if cached is None:
            error = self._verify_jwt(token)
            if isinstance(error, str):
                return error
            cached = error
            self._verified[token] = cached
            while len(self._verified) > 1000:
                self._verified.popitem(last=False)
        key_id, team_id, issued_at = cached
        record["key_id"], record["team_id"] = key_id, team_id
        if issued_at < time.time() - TOKEN_MAX_AGE:
            return "ExpiredProviderToken"
        return None

    def _verify_jwt(self, token: str) -> str | tuple[str, str, int]:
        """The error reason, or (kid, iss, iat) of a valid provider token."""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return "InvalidProviderToken"
        key_id, team_id, issued_at = header.get("kid"), claims.get("iss"), claims.get("iat")
        if not (isinstance(key_id, str) and isinstance(team_id, str) and isinstance(issued_at, int)):
            return "InvalidProviderToken"
        if header.get("alg") != "ES256" or issued_at > time.time() + 60:
            return "InvalidProviderToken"
        if issued_at < time.time() - TOKEN_MAX_AGE:
            return "ExpiredProviderToken"
        if not self._signature_ok(token, key_id, team_id):
            return "InvalidProviderToken"
        return key_id, team_id, issued_at

    def _signature_ok(self, token: str, key_id: str, team_id: str) -> bool:
        if self.key_lookup is None:
            return True  # no keys configured: form and age only
        key = self.key_lookup(key_id, team_id)
        if key is None:
            return False
        try:
            jwt.decode(token, key, algorithms=["ES256"], options={"verify_iat": False, "verify_exp": False})
        except jwt.PyJWTError:
            return False
        return True

    def _check_topic(self, headers: dict[str, str], record: dict[str, Any], client_topic: str | None) -> str | None:
        topic = headers.get("apns-topic")
        if topic is None and record["auth"] == "certificate" and client_topic:
            topic = client_topic
        if not topic:
            return "MissingTopic"
        record["topic"] = topic
        base = next((topic.removesuffix(s) for s in TOPIC_SUFFIXES if topic.endswith(s)), topic)
        if self.topics and topic not in self.topics and base not in self.topics:
            return "TopicDisallowed"
        if record["auth"] == "certificate" and client_topic and client_topic not in (topic, base):
            return "TopicDisallowed"
        return None

    def _inject(self, token: str) -> _Answer:
        injection = injection_for(token)
        if injection is None:
            return _Answer(200)
        if injection.once:
            with self._once_lock:
                if token in self._failed_once:
                    return _Answer(200)
                self._failed_once.add(token)
        if injection.behaviour == "slow":
            return _Answer(200, behaviour="slow")
        if injection.behaviour == "goaway":
            return _Answer(None, "Shutdown", behaviour="goaway")
        timestamp = int(time.time() * 1000) if injection.status == 410 else None
        return _Answer(injection.status, injection.reason, timestamp)


class _ServerConnection(asyncio.Protocol):
    """One client connection: an h2 state machine driven by the transport, answering on its own."""

    def __init__(self, emulator: ApnsEmulator) -> None:
        self.emulator = emulator
        config = H2Configuration(client_side=False, header_encoding="utf-8")
        self.conn = H2Connection(config=config)
        self.conn.local_settings = _server_settings(emulator.max_concurrent_streams)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        # Bodies waiting for flow-control window: (data, may be split over several DATA frames).
        self.outbox: OrderedDict[int, tuple[bytes, bool]] = OrderedDict()
        self.timers: dict[int, tuple[asyncio.TimerHandle, dict[str, Any]]] = {}
        self.last_handled = 0
        self.client_topic: str | None = None
        self.has_client_cert = False
        self.closed = False
        self.going_away = False  # GOAWAY sent: incoming frames are read and ignored until the close
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.emulator._connections.add(self)
        peercert = transport.get_extra_info("peercert")
        if peercert:
            self.has_client_cert = True
            self.client_topic = _certificate_topic(peercert)
        self.conn.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.abort_pending()
        self.emulator._connections.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.going_away:
            return
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self.flush()  # h2 has queued a GOAWAY naming the error
            self.close()
            return
        for event in events:
            if self.is_closing():
                return
            if isinstance(event, RequestReceived):
                self.streams[event.stream_id] = _Stream(headers=list(event.headers or []))  # type: ignore[arg-type]
            elif isinstance(event, DataReceived):
                self.on_data(event)
            elif isinstance(event, StreamEnded):
                self.on_request(event.stream_id)
            elif isinstance(event, StreamReset):
                self.forget(event.stream_id)
            elif isinstance(event, WindowUpdated | RemoteSettingsChanged):
                self.send_waiting_bodies()
            elif isinstance(event, ConnectionTerminated):
                self.close()
                return
        self.flush()

    # h2 -----------------------------------------------------------------------------------------

    def on_data(self, event: DataReceived) -> None:
        stream_id = event.stream_id
        stream = self.streams.get(stream_id)
        if event.flow_controlled_length:
            with contextlib.suppress(StreamClosedError):
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        if stream is None or not event.data:
            return
        if len(stream.body) + len(event.data) > 4 * MAX_VOIP_PAYLOAD:  # keep no more than needed to judge
            stream.oversized = True
        else:
            stream.body.extend(event.data)

    def on_request(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        if _path_of(stream).split("?")[0] == INBOX_PATH:
            self.serve_inbox(stream_id, stream)
            return
        answer, request = self.emulator.decide(stream, self.client_topic, self.has_client_cert)
        record = request.record
        request_id = record["headers"].get("apns-id") or str(uuid.uuid4())
        record["apns_id"] = request_id
        if answer.behaviour == "goaway":
            self.record(record, answer)
            self.goaway(answer.reason or "Shutdown")
            return
        self.last_handled = stream_id
        if answer.behaviour == "slow":
            loop = asyncio.get_running_loop()
            record["delayed"] = self.emulator.slow_delay
            timer = loop.call_later(self.emulator.slow_delay, self.answer_late, stream_id, request_id, answer, record)
            self.timers[stream_id] = (timer, record)
            return
        self.record(record, answer)
        self.respond(stream_id, request_id, answer)

    def answer_late(self, stream_id: int, request_id: str, answer: _Answer, record: dict[str, Any]) -> None:
        self.timers.pop(stream_id, None)
        if self.closed:
            return
        self.record(record, answer)
        self.respond(stream_id, request_id, answer)
        self.flush()

    def record(self, record: dict[str, Any], answer: _Answer) -> None:
        record["status"] = answer.status
        record["reason"] = answer.reason if answer.behaviour != "goaway" else f"GOAWAY {answer.reason}"
        if answer.timestamp is not None:
            record["timestamp"] = answer.timestamp
        record["received_at"] = now_iso()
        self.emulator.handled += 1
        self.emulator.inbox.add(PLATFORM, record)

    def respond(self, stream_id: int, request_id: str, answer: _Answer) -> None:
        assert answer.status is not None
        headers = [(":status", str(answer.status)), ("apns-id", request_id)]
        try:
            if answer.reason is None:
                self.conn.send_headers(stream_id, headers, end_stream=True)
                return
            body: dict[str, Any] = {"reason": answer.reason}
            if answer.timestamp is not None:
                body["timestamp"] = answer.timestamp
            self.conn.send_headers(stream_id, [*headers, ("content-type", "application/json")])
        except (StreamClosedError, ProtocolError):
            return  # the client reset the stream or is going away
        self.outbox[stream_id] = (json.dumps(body, separators=(",", ":")).encode(), False)
        self.send_waiting_bodies()

    def serve_inbox(self, stream_id: int, stream: _Stream) -> None:
        """``GET /_emulator/inbox[?limit=N]`` (JSON list, oldest first) and ``DELETE`` (clears it)."""
        method = dict(stream.headers).get(":method")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(_path_of(stream)).query)
        if method == "DELETE":
            self.emulator.inbox.clear()
            body: Any = {"cleared": True}
        elif method == "GET":
            body = self.emulator.inbox.items(PLATFORM)
            limit = query.get("limit", [""])[0]
            if limit.isdigit():
                body = body[-int(limit) :] if int(limit) else []
        else:
            self.respond(stream_id, str(uuid.uuid4()), _Answer(405, "MethodNotAllowed"))
            return
        data = json.dumps(body).encode()
        headers = [(":status", "200"), ("content-type", "application/json"), ("content-length", str(len(data)))]
        with contextlib.suppress(StreamClosedError, ProtocolError):
            self.conn.send_headers(stream_id, headers)
            self.outbox[stream_id] = (data, True)
            self.send_waiting_bodies()

    def send_waiting_bodies(self) -> None:
        """Send waiting bodies, in order, as the client's flow-control window allows.

        An APNs error body goes out as exactly one DATA frame, so it waits for a window that holds
        all of it (a real server waits too); an inbox listing may be split.
        """
        for stream_id in list(self.outbox):
            data, splittable = self.outbox[stream_id]
            try:
                window = self.conn.local_flow_control_window(stream_id)
            except (StreamClosedError, ProtocolError):
                del self.outbox[stream_id]
                continue
            if not splittable:
                if window < len(data):
                    return
                self.conn.send_data(stream_id, data, end_stream=True)
                del self.outbox[stream_id]
                continue
            while data and window > 0:
                size = min(window, self.conn.max_outbound_frame_size, len(data))
                self.conn.send_data(stream_id, data[:size], end_stream=size == len(data))
                data, window = data[size:], window - size
            if data:
                self.outbox[stream_id] = (data, True)
                return
            del self.outbox[stream_id]

    def goaway(self, reason: str) -> None:
        """Send GOAWAY, stop handling requests, and close after a grace period.

        Closing at once would make the client's next write fail (EPIPE) before it reads the
        GOAWAY, and it would then think every request in flight might have been processed.
        """
        self.conn.close_connection(
            error_code=ErrorCodes.NO_ERROR,
            additional_data=json.dumps({"reason": reason}).encode(),
            last_stream_id=self.last_handled,
        )
        self.flush()
        self.going_away = True
        self.abort_pending()  # h2 sends nothing more after GOAWAY: delayed answers are lost
        asyncio.get_running_loop().call_later(GOAWAY_GRACE, self.close)

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self.outbox.pop(stream_id, None)
        pending = self.timers.pop(stream_id, None)
        if pending is not None:
            pending[0].cancel()
            self.record(pending[1], _Answer(None, "abandoned: the client reset the stream"))

    def abort_pending(self) -> None:
        """Cancel delayed answers; record each as abandoned (its connection is going away)."""
        for timer, record in self.timers.values():
            timer.cancel()
            self.record(record, _Answer(None, "abandoned: connection closed before the delayed answer"))
        self.timers.clear()

    def is_closing(self) -> bool:
        return self.closed or self.going_away or self.transport is None or self.transport.is_closing()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        self.abort_pending()
        if self.transport is not None:
            self.transport.close()


def _path_of(stream: _Stream) -> str:
    return next((value for name, value in stream.headers if name == ":path"), "")


def _server_settings(max_streams: int) -> Any:
    from h2.settings import Settings

    return Settings(
        client=False,
        initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
        },
    )


def _certificate_topic(peercert: dict[str, Any]) -> str | None:
    """The topic of an APNs client certificate: subject UID, else the common name after ': '."""
    names = {key: value for rdn in peercert.get("subject", ()) for key, value in rdn}
    uid = names.get("userId")
    if uid:
        return str(uid)
    common_name = str(names.get("commonName", ""))
    return common_name.rpartition(": ")[2] or None


# -- running it -----------------------------------------------------------------------------------


class EmulatorThread:
    """Runs an emulator on its own thread and event loop (for synchronous callers and the CLI app).

    ``with EmulatorThread(emulator) as running: running.url``
    """

    def __init__(self, emulator: ApnsEmulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.emulator.url

    def start(self) -> EmulatorThread:
        started: Future[int] = Future()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                _, port = self._loop.run_until_complete(self.emulator.start(self.host, self.port))
            except BaseException as exc:
                started.set_exception(exc)
                self._loop.close()
                return
            started.set_result(port)
            self._loop.run_forever()
            self._loop.run_until_complete(self.emulator.stop())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="apns-emulator", daemon=True)
        self._thread.start()
        self.port = started.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def key_lookup_from(keys: dict[tuple[str, str], bytes]) -> KeyLookup:
    """A ``key_lookup`` over PEM keys by (key id, team id); a private .p8 key gives its public key."""
    public: dict[tuple[str, str], EllipticCurvePublicKey] = {}
    for ident, pem in keys.items():
        key: Any = load_pem_private_key(pem, None).public_key() if b"PRIVATE KEY" in pem else load_pem_public_key(pem)
        if not isinstance(key, EllipticCurvePublicKey):
            raise ValueError(f"key {ident[0]} is not an EC (ES256) key")
        public[ident] = key
    return lambda key_id, team_id: public.get((key_id, team_id))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m push.emulators.apns", description="Local APNs emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port (printed)")
    parser.add_argument("--tls-dir", type=Path, default=Path("instance/emulators/tls"))
    parser.add_argument("--topic", action="append", default=[], help="allowed topic (repeat); default any")
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY_ID:TEAM_ID:PEM",
        help="verify JWTs of this key (public key or .p8); default: check form and age only",
    )
    parser.add_argument("--slow-delay", type=float, default=3.0, help="seconds before a d0000000 token is answered")
    parser.add_argument("--max-streams", type=int, default=1000, help="MAX_CONCURRENT_STREAMS announced")
    parser.add_argument("--inbox-limit", type=int, default=200_000)
    args = parser.parse_args(argv)

    keys: dict[tuple[str, str], bytes] = {}
    for spec in args.key:
        key_id, team_id, path = spec.split(":", 2)
        keys[(key_id, team_id)] = Path(path).read_bytes()
    tls = local_tls(args.tls_dir)
    emulator = ApnsEmulator(
        tls,
        inbox=Inbox(limit=args.inbox_limit),
        key_lookup=key_lookup_from(keys) if keys else None,
        topics=args.topic,
        slow_delay=args.slow_delay,
        max_concurrent_streams=args.max_streams,
    )

    async def serve() -> None:
        await emulator.start(args.host, args.port)
        print(f"APNs emulator listening on {emulator.url} (trust {tls.ca_path.resolve()})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await emulator.stop()
        print(f"APNs emulator stopped after {emulator.handled} requests", flush=True)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
