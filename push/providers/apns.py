"""APNs through aioapns: token or certificate auth, a per-request timeout, and the library's defects fenced off.

aioapns 4.0 owns TLS, the connection pool, stream-id allocation and provider-token signing. Its
per-connection protocol is replaced (``pool.protocol_class``, the one hook it offers) by
:class:`_Connection`, which also carries the endpoint's host and port. The replacement fixes what
was measured against a local peer (``docs/local-peers.md``):

1. *Late responses.* When ``asyncio.wait_for`` gives up on a request, the library keeps its
   cancelled future; the late answer then raises ``InvalidStateError`` inside ``data_received``,
   the connection dies and the pool re-sends every other request in flight on it (duplicates).
   Here answers are matched to requests by stream id (never by ``apns-id``, which repeats when a
   message is re-sent) and an answer to a request nobody waits for any more is dropped.
2. *GOAWAY.* The library keeps using a connection between GOAWAY and its close, and ``h2``
   raises a raw ``ProtocolError`` on the next send. Here a GOAWAY removes the connection from the
   pool at once; a request that was never sent, or whose stream is above the GOAWAY's
   ``last_stream_id`` (not processed, by the HTTP/2 rules), is handed back to the pool as
   ``ConnectionClosed`` and goes out on another connection; one that may have been processed is
   reported as a lost connection (``ErrorKind.CONNECTION``), never sent again behind the engine's
   back. Any leftover ``h2`` error still becomes a CONNECTION result, not an exception.
3. *Flow control.* The library never acknowledges received DATA, so after about 64 KiB of error
   bodies on one connection (some 2,400 ``BadDeviceToken`` answers) the server cannot answer any
   more and every request times out. Here received data is acknowledged; request bodies wait for
   the server's window instead of raising ``FlowControlError`` after their HEADERS went out.
4. *Provider tokens.* The library signs a JWT per connection; here all connections of a provider
   share one (Apple refuses tokens renewed more often than every 20 minutes).

Per message, the connection spends less CPU than the library would (bench/send_profile.py): the
requests of one loop iteration leave in one write (:meth:`_Connection.flush_soon`); at most
:data:`STREAMS_PER_CONNECTION` streams share a connection (h2 walks them all for each new one);
the per-request headers are never indexed and the others are encoded by
:class:`~push.providers.hpack_memo.MemoEncoder`.

Each message's ``apns-id`` is derived from its key (:func:`apns_id_for`), so a re-sent message is
recognisable in Apple's logs and in the emulator's inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import ssl
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

from aioapns import APNs, NotificationRequest
from aioapns.common import NotificationResult, PushType
from aioapns.connection import (
    APNsBaseClientProtocol,
    APNsTLSClientProtocol,
    AuthorizationHeaderProvider,
    JWTAuthorizationHeaderProvider,
)
from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
from aioapns.exceptions import ConnectionError as ApnsConnectionError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.x509 import load_pem_x509_certificates
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from hpack import NeverIndexedHeaderTuple

from core.tls import client_context
from push.providers.base import ErrorKind, PushError, PushMessage, SendResult
from push.providers.hpack_memo import MemoEncoder

logger = logging.getLogger(__name__)
_LEAN_H2 = H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False)

PRODUCTION_HOST = "api.push.apple.com"
SANDBOX_HOST = "api.sandbox.push.apple.com"
APNS_PORT = 443
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_IN_FLIGHT = 1000
APNS_ID_NAMESPACE = uuid.UUID("7b0c3a2e-56a1-4c1e-9d7e-2f1a8e4b6c90")  # pushgate's: uuid5(ns, key)
APNS_ID_PREFIX = "7b0c3a2e-56a1-4c1e-9d7e-"
MAX_RESPONSE_BODY = 64 * 1024
#: At most this many concurrent streams per connection (the server allows up to its own
#: MAX_CONCURRENT_STREAMS, 1000 at Apple): h2 walks every stream of a connection each time it opens
#: one, so 300 requests in flight on one connection cost ~10% more CPU per message than the same
#: spread over three (bench/send_profile.py: 0.24 vs 0.22 ms a message on the loop).
STREAMS_PER_CONNECTION = 100
HEX_TOKEN = re.compile(r"^[0-9a-fA-F]+$")
# Request headers a message may not set: the provider owns them.
RESERVED_HEADERS = frozenset({"apns-id", "authorization", "host", "content-length"})
HEADER_NAME = re.compile(r"^[a-z0-9-]+$")

TOKEN_INVALID_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "MissingDeviceToken"})
AUTH_REASONS = frozenset({"BadTopic", "MissingTopic", "TopicDisallowed", "BadCertificate", "BadCertificateEnvironment"})


def apns_id_for(key: int) -> str:
    """The ``apns-id`` of the message with this key: the same on every attempt.

    A fixed prefix and the key (the broadLog id) in hex as the last group, so the id is readable
    in Apple's and the emulator's logs and costs no hashing per message; keys beyond 48 bits
    (never broadLog ids, which stay below 2^32) fall back to a name-based UUID."""
    if 0 <= key < 1 << 48:
        return f"{APNS_ID_PREFIX}{key:012x}"
    return str(uuid.uuid5(APNS_ID_NAMESPACE, str(key)))


def error_for(status: int, reason: str, timestamp: int | None = None) -> PushError:
    """What an APNs error answer means (docs/protocols.md §5.2)."""
    if status == 410:
        when = datetime.fromtimestamp(timestamp / 1000, UTC) if isinstance(timestamp, int) else None
        return PushError(ErrorKind.TOKEN_GONE, reason, status, unregistered_at=when)
    if status == 0:  # no usable :status: treat like a server fault
        return PushError(ErrorKind.UNAVAILABLE, reason or "BadResponse", None)
    if reason in TOKEN_INVALID_REASONS:
        kind = ErrorKind.TOKEN_INVALID
    elif status == 403 or reason in AUTH_REASONS:
        kind = ErrorKind.AUTH
    elif status == 429:
        kind = ErrorKind.THROTTLED
    elif status >= 500:
        kind = ErrorKind.UNAVAILABLE
    else:  # 413 PayloadTooLarge and the 400s about headers or payload: this message cannot go
        kind = ErrorKind.PAYLOAD_REJECTED
    return PushError(kind, reason, status)


class _InFlightLost(Exception):
    """The connection ended after the request was sent and before its answer: it may have arrived."""


class ApnsRequest(NotificationRequest):
    """A request whose headers and body are sent exactly as given (``apns-expiration`` is absolute)."""

    __slots__ = ("body", "headers")

    def __init__(self, device_token: str, body: bytes, headers: dict[str, str], notification_id: str) -> None:
        super().__init__(device_token, {}, notification_id=notification_id)
        self.body = body
        self.headers = headers


@dataclass
class _Pending:
    request_id: str
    future: asyncio.Future[NotificationResult]
    sent: bool = False  # END_STREAM queued (flush_soon): from here on the server may have processed it
    status: str = ""
    response_id: str = ""
    body: bytearray = field(default_factory=bytearray)


class _Connection(APNsTLSClientProtocol):
    """One HTTP/2 connection to APNs. Subclassed per provider with ``APNS_SERVER``/``APNS_PORT``."""

    shared_auth: ClassVar[AuthorizationHeaderProvider | None] = None
    registry: ClassVar[set[_Connection]]

    def __init__(
        self,
        apns_topic: str,
        loop: asyncio.AbstractEventLoop | None = None,
        on_connection_lost: Callable[[APNsBaseClientProtocol], Any] | None = None,
        auth_provider: AuthorizationHeaderProvider | None = None,
    ) -> None:
        super().__init__(apns_topic, loop, on_connection_lost, self.shared_auth or auth_provider)
        # Replaced before connection_made sends the preface. _request_for already checked every
        # header (lower-case names, no CR/LF/NUL), so h2's per-header validation and
        # normalisation only cost CPU; without normalisation HPACK also indexes the provider
        # JWT (the same for up to an hour) once per connection instead of re-encoding its ~200
        # bytes as a never-indexed literal in every request.
        self.conn = H2Connection(config=_LEAN_H2)
        self.conn.encoder = MemoEncoder()  # before the first HEADERS: the tables start empty
        self.pending: dict[int, _Pending] = {}
        self._cap_streams()
        self.flush_scheduled = False
        self.terminated = False
        self.discarded = False
        self.window_open = asyncio.Event()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        type(self).registry.add(self)

    # sending ------------------------------------------------------------------------------------

    @property
    def is_busy(self) -> bool:
        return self.terminated or self.free_channels.is_busy

    def _cap_streams(self) -> None:
        """Use at most STREAMS_PER_CONNECTION of the streams the server allows."""
        self.free_channels.bound = min(self.free_channels.bound, STREAMS_PER_CONNECTION)

    def closing(self) -> bool:
        return self.terminated or self.transport is None or self.transport.is_closing()

    async def send_notification(self, request: NotificationRequest) -> NotificationResult:
        if self.closing():
            self._discard()  # or the pool would hand out this connection again at once
            raise ConnectionClosed("connection is closing")  # nothing sent: the pool tries another one
        stream_id = await self.free_channels.acquire()
        if self.closing():
            self._discard()
            raise ConnectionClosed("connection is closing")
        body, headers = self._encode(request)
        try:
            self.conn.send_headers(stream_id=stream_id, headers=headers)
        except ProtocolError as exc:  # h2 saw the GOAWAY first: nothing went out
            self.free_channels.release()
            raise ConnectionClosed(f"connection closed: {exc}") from exc
        pending = _Pending(request.notification_id, self.loop.create_future())
        self.pending[stream_id] = pending
        try:
            await self._send_body(stream_id, body)
        except BaseException:
            # Cancelled (timeout) or the connection went away while the body waited for window:
            # the request is incomplete, so the server cannot have processed it.
            self._abandon(stream_id)
            raise
        pending.sent = True
        return await pending.future

    def _encode(self, request: NotificationRequest) -> tuple[bytes, list[tuple[str, str]]]:
        authority = self.APNS_SERVER if self.APNS_PORT == 443 else f"{self.APNS_SERVER}:{self.APNS_PORT}"
        # The two fields unique to each request are never indexed: added to the HPACK dynamic
        # table, each would evict an older entry, so the table would churn on every request and
        # the constant fields (topic, push type, provider token) would be re-sent as literals
        # and searched for in a long table instead of encoded as one index byte.
        headers = [
            (":method", "POST"),
            (":scheme", "https"),
            _never_indexed(":path", f"/3/device/{request.device_token}"),
            (":authority", authority),
            _never_indexed("apns-id", request.notification_id),
        ]
        if isinstance(request, ApnsRequest):
            body = request.body
            extra = dict(request.headers)
        else:  # a plain aioapns request, as the library would send it
            body = json.dumps(request.message, ensure_ascii=False, separators=(",", ":")).encode()
            extra = _library_headers(request)
        extra.setdefault("apns-topic", request.apns_topic or self.apns_topic)
        headers.extend(extra.items())
        if self.auth_provider is not None:
            headers.append(("authorization", self.auth_provider.get_header()))
        return body, headers

    async def _send_body(self, stream_id: int, body: bytes) -> None:
        """Send the body in DATA frames the server's window and frame size allow, then END_STREAM."""
        offset = 0
        while True:
            if self.closing():
                raise ConnectionClosed("connection closed before the request body was sent")
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            size = min(window, len(body) - offset)
            last = offset + size == len(body)
            if size > 0 or last:
                self.conn.send_data(stream_id, body[offset : offset + size], end_stream=last)
                offset += size
                if last:
                    self.flush_soon()
                    return
                continue
            self.flush()
            self.window_open.clear()
            await self.window_open.wait()

    def _abandon(self, stream_id: int) -> None:
        pending = self.pending.pop(stream_id, None)
        if pending is None:
            return
        if not pending.future.done():
            pending.future.cancel()
        if not self.closing():
            with contextlib.suppress(ProtocolError):
                self.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            self.flush()
        self.free_channels.release()

    def flush_soon(self) -> None:
        """Write what h2 has queued once this loop iteration's other requests have queued theirs:
        a batch leaves in a few TLS records and writes instead of one per request. A request is
        marked sent before its bytes leave, so a connection lost in between reports it as possibly
        delivered (retried by the engine), never as safe to resend behind its back."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        data = self.conn.data_to_send()
        if data and not self.closing():
            self.refresh_inactivity_timer()
            assert self.transport is not None
            self.transport.write(data)

    # receiving ----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            logger.warning("APNs connection %s: protocol error %s; closing it", self.APNS_SERVER, exc)
            self.flush()
            self.close()
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                self._on_headers(event)
            elif isinstance(event, DataReceived):
                self._on_data(event)
            elif isinstance(event, StreamEnded):
                self._on_end(event.stream_id)
            elif isinstance(event, StreamReset):
                self._on_reset(event)
            elif isinstance(event, RemoteSettingsChanged):
                self.on_remote_settings_changed(event.changed_settings)  # type: ignore[arg-type]
                self._cap_streams()  # the library just set the bound to the server's maximum
                self.window_open.set()
            elif isinstance(event, WindowUpdated):
                self.window_open.set()
            elif isinstance(event, ConnectionTerminated):
                self._on_goaway(event)
                return
        self.flush()

    def _on_headers(self, event: ResponseReceived) -> None:
        pending = self.pending.get(event.stream_id)
        if pending is None:
            return
        for name, value in event.headers or ():
            key, text = bytes(name).decode(), bytes(value).decode()  # aioapns's h2 has no header encoding
            if key == ":status":
                pending.status = text
            elif key == "apns-id":
                pending.response_id = text

    def _on_data(self, event: DataReceived) -> None:
        stream_id = event.stream_id
        if event.flow_controlled_length:
            # aioapns never does this: without it the server runs out of window for error bodies.
            with contextlib.suppress(ProtocolError):
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        pending = self.pending.get(stream_id)
        if pending is not None and event.data and len(pending.body) < MAX_RESPONSE_BODY:
            pending.body.extend(event.data)

    def _on_end(self, stream_id: int) -> None:
        pending = self.pending.pop(stream_id, None)
        if pending is None:
            return
        self.free_channels.release()
        if pending.future.done():
            logger.debug("APNs answer %s for %s arrived after its timeout; dropped", pending.status, pending.request_id)
            return
        result_id = pending.response_id or pending.request_id
        if pending.status == "200":
            pending.future.set_result(NotificationResult(result_id, "200"))
            return
        reason, timestamp = _parse_error_body(bytes(pending.body))
        result = NotificationResult(result_id, pending.status, description=reason, timestamp=timestamp)
        pending.future.set_result(result)

    def _on_reset(self, event: StreamReset) -> None:
        pending = self.pending.pop(event.stream_id, None)
        if pending is None:
            return
        self.free_channels.release()
        if pending.future.done():
            return
        if event.error_code == ErrorCodes.REFUSED_STREAM:
            pending.future.set_exception(ConnectionClosed("stream refused"))  # not processed: safe to resend
        else:
            pending.future.set_exception(_InFlightLost(f"stream reset by the server ({event.error_code})"))

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        last = event.last_stream_id if event.last_stream_id is not None else 0
        logger.info(
            "APNs GOAWAY from %s: code=%s last_stream_id=%s data=%r",
            self.APNS_SERVER,
            event.error_code,
            last,
            event.additional_data,
        )
        self.terminated = True
        self._discard()
        self._fail_pending(lambda stream_id: stream_id > last, "GOAWAY")
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.terminated = True
        if self.inactivity_timer:
            self.inactivity_timer.cancel()
        self._discard()
        self._fail_pending(lambda stream_id: False, f"connection lost ({exc or 'closed'})")
        type(self).registry.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail_pending(self, unprocessed: Callable[[int], bool], why: str) -> None:
        """Fail every sent request still waiting: unprocessed ones may go out again, the others not."""
        for stream_id, pending in list(self.pending.items()):
            if not pending.sent or pending.future.done():
                continue  # a request still sending its body notices the closed connection itself
            del self.pending[stream_id]
            if unprocessed(stream_id):
                pending.future.set_exception(ConnectionClosed(f"{why}: not processed"))
            else:
                pending.future.set_exception(_InFlightLost(f"{why} before the answer"))
        self.free_channels.destroy(ConnectionClosed(why))
        self.window_open.set()

    def _discard(self) -> None:
        if not self.discarded:
            self.discarded = True
            if self.on_connection_lost is not None:
                self.on_connection_lost(self)


def _never_indexed(name: str, value: str) -> tuple[str, str]:
    """A header h2 passes to HPACK as a never-indexed literal (kept out of the dynamic table)."""
    return cast("tuple[str, str]", NeverIndexedHeaderTuple(name, value))


def _library_headers(request: NotificationRequest) -> dict[str, str]:
    headers: dict[str, str] = {}
    if request.time_to_live is not None:
        headers["apns-expiration"] = str(int(datetime.now(UTC).timestamp()) + request.time_to_live)
    if request.priority is not None:
        headers["apns-priority"] = str(request.priority)
    if request.collapse_key is not None:
        headers["apns-collapse-id"] = request.collapse_key
    if request.push_type is not None:
        headers["apns-push-type"] = request.push_type.value
    return headers


def _parse_error_body(body: bytes) -> tuple[str, int | None]:
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return "", None
    if not isinstance(data, dict):
        return "", None
    reason, timestamp = data.get("reason"), data.get("timestamp")
    return (reason if isinstance(reason, str) else ""), (timestamp if isinstance(timestamp, int) else None)


def _connection_class(host: str, port: int, auth: AuthorizationHeaderProvider | None) -> type[_Connection]:
    attributes = {"APNS_SERVER": host, "APNS_PORT": port, "shared_auth": auth, "registry": set()}
    return cast("type[_Connection]", type("ApnsConnection", (_Connection,), attributes))


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Host and port of an ``https://host[:port]`` base URL (PUSHGATE_APNS_ENDPOINT)."""
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"APNs endpoint must be an https:// URL with a host, not {endpoint!r}")
    return parts.hostname, parts.port or APNS_PORT


@dataclass(frozen=True)
class TokenCredentials:
    """Token authentication: the .p8 key (PEM, ES256), its key id and the team id."""

    key_pem: str
    key_id: str
    team_id: str

    def __post_init__(self) -> None:
        key = serialization.load_pem_private_key(self.key_pem.encode(), None)
        if not isinstance(key, EllipticCurvePrivateKey) or not isinstance(key.curve, SECP256R1):
            raise ValueError("the APNs auth key must be a P-256 (ES256) private key, as in Apple's .p8 files")
        if not self.key_id or not self.team_id:
            raise ValueError("APNs token authentication needs a key id and a team id")


@dataclass(frozen=True)
class CertificateCredentials:
    """Certificate authentication: PEM certificate (chain) and private key, in one text or two."""

    cert_pem: str
    key_pem: str | None = None  # None: the key is inside cert_pem
    password: str | None = None

    def combined_pem(self) -> bytes:
        """Unencrypted key followed by the certificate chain (what the TLS stack loads)."""
        material = (self.key_pem or self.cert_pem).encode()
        password = self.password.encode() if self.password else None
        key = serialization.load_pem_private_key(material, password)
        certificates = load_pem_x509_certificates(self.cert_pem.encode())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return key_pem + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


class ApnsProvider:
    """:class:`~push.providers.base.Provider` for APNs. Build it anywhere; it connects on the first send.

    ``endpoint`` (``https://127.0.0.1:8443``) replaces Apple's host for both environments;
    ``ca_bundle`` adds trusted CAs (a local emulator's). ``topic`` is the default ``apns-topic``
    (the app's bundle id); a message's own ``apns-topic`` header wins.
    """

    platform = "ios"

    def __init__(
        self,
        *,
        topic: str,
        token: TokenCredentials | None = None,
        certificate: CertificateCredentials | None = None,
        sandbox: bool = False,
        endpoint: str = "",
        ca_bundle: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_connections: int = 10,
        max_connection_attempts: int = 3,
    ) -> None:
        if (token is None) == (certificate is None):
            raise ValueError("give exactly one of token or certificate credentials")
        if not topic:
            raise ValueError("an APNs topic (the app's bundle id) is required")
        self.topic = topic
        self.token = token
        self.certificate = certificate
        self.certificate_pem = certificate.combined_pem() if certificate else None  # validates early
        self.sandbox = sandbox
        default_host = SANDBOX_HOST if sandbox else PRODUCTION_HOST
        self.host, self.port = parse_endpoint(endpoint) if endpoint else (default_host, APNS_PORT)
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.max_connections = max_connections
        self.max_connection_attempts = max_connection_attempts
        self._client: APNs | None = None
        self._connection_class: type[_Connection] | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cert_file: Path | None = None
        self._closed = False

    # Provider -----------------------------------------------------------------------------------

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        if self._closed:
            raise RuntimeError("ApnsProvider.send after close()")
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise RuntimeError("ApnsProvider is bound to the event loop of its first send")
        client = self._ensure_client()
        # A fixed set of sender coroutines over the batch rather than one Task per message: the
        # semaphore bounds what is in flight either way, and Tasks cost CPU per message.
        pending: Iterator[PushMessage] = iter(messages)
        results: list[SendResult] = []

        async def sender() -> None:
            for message in pending:
                results.append(await self._send_one(client, message))

        await asyncio.gather(*(sender() for _ in range(min(self.max_in_flight, len(messages)))))
        return results

    async def close(self) -> None:
        self._closed = True
        self._remove_cert_file()
        if self._client is None or self._connection_class is None:
            return
        connections = list(self._connection_class.registry)  # pooled ones and any still closing
        self._client.pool.close()
        for connection in connections:
            connection.close()
        waiting = [c.lost for c in connections if not c.lost.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=2)
        for connection in connections:
            if not connection.lost.done() and connection.transport is not None:
                connection.transport.abort()
        self._client = None

    # internals ----------------------------------------------------------------------------------

    def _ensure_client(self) -> APNs:
        """The aioapns client, built on first use inside the running loop (its pool binds to it)."""
        if self._client is not None:
            return self._client
        context = client_context(self.ca_bundle)
        context.set_alpn_protocols(["h2"])
        auth: AuthorizationHeaderProvider | None = None
        if self.token is not None:
            auth = JWTAuthorizationHeaderProvider(self.token.key_pem, self.token.key_id, self.token.team_id)
            client = APNs(
                key=self.token.key_pem,
                key_id=self.token.key_id,
                team_id=self.token.team_id,
                topic=self.topic,
                use_sandbox=self.sandbox,
                ssl_context=context,
                max_connections=self.max_connections,
                max_connection_attempts=self.max_connection_attempts,
                err_func=_ignore_error,
            )
        else:
            client = self._certificate_client(context)
        self._connection_class = _connection_class(self.host, self.port, auth)
        client.pool.protocol_class = self._connection_class
        self._semaphore = asyncio.Semaphore(self.max_in_flight)
        self._loop = asyncio.get_running_loop()
        self._client = client
        return client

    def _certificate_client(self, context: ssl.SSLContext) -> APNs:
        """aioapns loads the client certificate from a path: a private file that lives only as long
        as the library needs it (it is read once, while the pool is built)."""
        assert self.certificate_pem is not None
        fd, name = tempfile.mkstemp(prefix="pushgate-apns-", suffix=".pem")  # created 0600
        self._cert_file = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.certificate_pem)
            return APNs(
                client_cert=name,
                topic=self.topic,
                use_sandbox=self.sandbox,
                ssl_context=context,
                max_connections=self.max_connections,
                max_connection_attempts=self.max_connection_attempts,
                err_func=_ignore_error,
            )
        finally:
            self._remove_cert_file()

    def _remove_cert_file(self) -> None:
        if self._cert_file is not None:
            self._cert_file.unlink(missing_ok=True)
            self._cert_file = None

    async def _send_one(self, client: APNs, message: PushMessage) -> SendResult:
        request = _request_for(message)
        if isinstance(request, PushError):
            return SendResult(message.key, error=request)
        assert self._semaphore is not None
        async with self._semaphore:
            try:
                async with asyncio.timeout(self.timeout):  # unlike wait_for (3.11), no extra Task
                    result = await client.send_notification(request)
            except TimeoutError:
                error = PushError(ErrorKind.TIMEOUT, "timeout", message=f"no answer within {self.timeout:g} s")
                return SendResult(message.key, error=error)
            except (_InFlightLost, ConnectionClosed, ApnsConnectionError, MaxAttemptsExceeded) as exc:
                return SendResult(message.key, error=_connection_error(exc))
            except (ProtocolError, OSError) as exc:  # h2 or socket errors the library let through
                return SendResult(message.key, error=_connection_error(exc))
        if result.is_successful:
            return SendResult(message.key, provider_message_id=result.notification_id)
        status = int(result.status) if result.status.isdigit() else 0
        reason = result.description or f"HTTP {result.status}"
        return SendResult(message.key, error=error_for(status, reason, result.timestamp))


async def _ignore_error(request: NotificationRequest, result: NotificationResult) -> None:
    """aioapns logs every error answer at ERROR level unless given this; results carry them."""


def _connection_error(exc: BaseException) -> PushError:
    if isinstance(exc, MaxAttemptsExceeded):
        reason, text = "connection_failed", "could not get the request through to APNs (connection attempts exhausted)"
    elif isinstance(exc, _InFlightLost):
        reason, text = "connection_lost", f"the answer may be lost: {exc}"
    else:
        reason, text = "connection_error", f"{type(exc).__name__}: {exc}"
    return PushError(ErrorKind.CONNECTION, reason, message=text)


def _request_for(message: PushMessage) -> ApnsRequest | PushError:
    """The aioapns request for a message, or the local reason it cannot be sent."""
    if not HEX_TOKEN.match(message.token):
        return PushError(ErrorKind.TOKEN_INVALID, "BadDeviceToken", message="device token is not hexadecimal")
    headers = _checked_headers(message.headers)
    if isinstance(headers, PushError):
        return headers
    try:
        body = _JSON.encode(message.payload).encode()
    except (TypeError, ValueError) as exc:
        return PushError(ErrorKind.PAYLOAD_REJECTED, "BadPayload", message=f"payload is not JSON: {exc}")
    request = ApnsRequest(message.token, body, headers, apns_id_for(message.key))
    # Also fill the library's own fields, for anything that reads them (logs, err_func).
    request.apns_topic = headers.get("apns-topic")
    request.collapse_key = headers.get("apns-collapse-id")
    priority = headers.get("apns-priority", "")
    request.priority = int(priority) if priority.isdigit() else None
    request.push_type = _PUSH_TYPES.get(headers.get("apns-push-type", ""))
    return request


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_PUSH_TYPES = {t.value: t for t in PushType}
_UNSAFE_VALUE = re.compile(r"[\r\n\0]")
#: Checked header sets by their items: a delivery's messages mostly share one set.
_checked: dict[tuple[tuple[str, Any], ...], dict[str, str] | PushError] = {}


def _checked_headers(given: Mapping[str, Any]) -> dict[str, str] | PushError:
    """The message's headers, lower-cased and without the reserved ones; or why they can't be sent."""
    try:
        key = tuple(given.items())
        known = _checked.get(key)
    except TypeError:  # an unhashable value: check it every time
        key, known = (), None
    if known is None:
        known = _check_headers(given)
        if key:
            if len(_checked) >= 1024:
                _checked.clear()
            _checked[key] = known
    return dict(known) if isinstance(known, dict) else known


def _check_headers(given: Mapping[str, Any]) -> dict[str, str] | PushError:
    headers: dict[str, str] = {}
    for name, value in given.items():
        lower = name.lower()
        if lower in RESERVED_HEADERS:
            continue
        text = str(value)
        if not HEADER_NAME.match(lower) or text != text.strip() or _UNSAFE_VALUE.search(text):
            return PushError(ErrorKind.PAYLOAD_REJECTED, "InvalidHeader", message=f"header {name!r} is not valid")
        headers[lower] = text
    return headers
