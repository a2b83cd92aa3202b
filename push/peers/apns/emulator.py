"""The emulator: Apple's checks of a request (JWT or certificate, headers, payload) and the
answer, recorded in the inbox; the server that owns the connections."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from pathlib import Path
from typing import Any

import jwt

from push.peers.apns.common import (
    MAX_COLLAPSE_ID,
    MAX_PAYLOAD,
    MAX_VOIP_PAYLOAD,
    PATH_PREFIX,
    PRIORITIES,
    PUSH_TYPES,
    TOKEN_MAX_AGE,
    TOKEN_RE,
    TOPIC_SUFFIXES,
    UUID_RE,
    Answer,
    KeyLookup,
    Request,
    Stream,
    injection_for,
)
from push.peers.apns.connection import ServerConnection
from push.peers.inbox import Inbox
from push.peers.tls import LocalTLS


def _first_failure(status: int, rules: tuple[tuple[bool, str], ...]) -> Answer | None:
    return next((Answer(status, reason) for failed, reason in rules if failed), None)


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
        self._connections: set[ServerConnection] = set()
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
        self._server = await loop.create_server(lambda: ServerConnection(self), host, port, ssl=context)
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

    def decide(self, stream: Stream, client_topic: str | None, has_client_cert: bool) -> tuple[Answer, Request]:
        """The answer to one complete request, and the request as parsed (its record without status)."""
        request = Request.parse(stream, client_topic, has_client_cert)
        for check in (self._check_route, self._check_auth, self._check_headers, self._check_payload):
            answer = check(request)
            if answer is not None:
                return answer, request
        return self._inject(request.token), request

    def _check_route(self, request: Request) -> Answer | None:
        token = request.token
        if request.method != "POST":
            return Answer(405, "MethodNotAllowed")
        if not request.path.startswith(PATH_PREFIX) or "/" in token or "?" in token:
            return Answer(404, "BadPath")
        rules = (
            (not token, "MissingDeviceToken"),
            (request.duplicate, "DuplicateHeaders"),
            (request.apns_id is not None and not UUID_RE.match(request.apns_id), "BadMessageId"),
        )
        return _first_failure(400, rules)

    def _check_auth(self, request: Request) -> Answer | None:
        error = self._authenticate(request.headers.get("authorization"), request.has_client_cert, request.record)
        return Answer(403, error) if error else None

    def _check_headers(self, request: Request) -> Answer | None:
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
            failure = Answer(400, topic_error) if topic_error else _first_failure(400, rules[1:])
        return failure

    def _check_payload(self, request: Request) -> Answer | None:
        limit = MAX_VOIP_PAYLOAD if request.headers.get("apns-push-type") == "voip" else MAX_PAYLOAD
        if not request.body:
            return Answer(400, "PayloadEmpty")
        if request.oversized or len(request.body) > limit:
            return Answer(413, "PayloadTooLarge")
        if not isinstance(request.payload, dict):
            return Answer(400, "BadPayload")
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

    def _inject(self, token: str) -> Answer:
        injection = injection_for(token)
        if injection is None:
            return Answer(200)
        if injection.once:
            with self._once_lock:
                if token in self._failed_once:
                    return Answer(200)
                self._failed_once.add(token)
        if injection.behaviour == "slow":
            return Answer(200, behaviour="slow")
        if injection.behaviour == "goaway":
            return Answer(None, "Shutdown", behaviour="goaway")
        timestamp = int(time.time() * 1000) if injection.status == 410 else None
        return Answer(injection.status, injection.reason, timestamp)
