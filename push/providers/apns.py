"""APNs through aioapns: token or certificate auth, a per-request timeout, and the library's defects fenced off.

Contract: :class:`ApnsProvider` is the :class:`~push.providers.base.Provider` for iOS. It checks
each message locally (hexadecimal token, headers, JSON payload), sends the rest of a batch with
at most ``max_in_flight`` requests in flight, each within ``timeout`` seconds, and answers one
:class:`~push.providers.base.SendResult` per message; it never raises for a message's failure.

The HTTP/2 connection that replaces aioapns's own (late answers, GOAWAY, flow control, and the
CPU a message costs) is :mod:`push.providers.apns_connection`; what an APNs answer or a lost
connection means for the engine is :mod:`push.providers.apns_errors`. This module owns the
credentials (a .p8 key whose provider token all connections share, since Apple refuses tokens
renewed more often than every 20 minutes; or a client certificate, written to a private file only
while aioapns loads it), the endpoint and the aioapns client.

Each message's ``apns-id`` is derived from its key (:func:`apns_id_for`), so a re-sent message is
recognisable in Apple's logs and in the emulator's inbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aioapns import APNs, NotificationRequest
from aioapns.common import NotificationResult, PushType
from aioapns.connection import AuthorizationHeaderProvider, JWTAuthorizationHeaderProvider
from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
from aioapns.exceptions import ConnectionError as ApnsConnectionError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.x509 import load_pem_x509_certificates
from h2.exceptions import ProtocolError

from core.tls import client_context
from push.providers.apns_connection import ApnsRequest, Connection, InFlightLost, connection_class
from push.providers.apns_errors import connection_error, error_for
from push.providers.base import ErrorKind, PushError, PushMessage, SendResult
from push.providers.h2_streams import close_all

PRODUCTION_HOST = "api.push.apple.com"
SANDBOX_HOST = "api.sandbox.push.apple.com"
APNS_PORT = 443
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_IN_FLIGHT = 1000
APNS_ID_NAMESPACE = uuid.UUID("7b0c3a2e-56a1-4c1e-9d7e-2f1a8e4b6c90")  # pushgate's: uuid5(ns, key)
APNS_ID_PREFIX = "7b0c3a2e-56a1-4c1e-9d7e-"
HEX_TOKEN = re.compile(r"^[0-9a-fA-F]+$")
# Request headers a message may not set: the provider owns them.
RESERVED_HEADERS = frozenset({"apns-id", "authorization", "host", "content-length"})
HEADER_NAME = re.compile(r"^[a-z0-9-]+$")


def apns_id_for(key: int) -> str:
    """The ``apns-id`` of the message with this key: the same on every attempt.

    A fixed prefix and the key (the broadLog id) in hex as the last group, so the id is readable
    in Apple's and the emulator's logs and costs no hashing per message; keys beyond 48 bits
    (never broadLog ids, which stay below 2^32) fall back to a name-based UUID."""
    if 0 <= key < 1 << 48:
        return f"{APNS_ID_PREFIX}{key:012x}"
    return str(uuid.uuid5(APNS_ID_NAMESPACE, str(key)))


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
        self._connection_class: type[Connection] | None = None
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
        await close_all(connections)
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
        self._connection_class = connection_class(self.host, self.port, auth)
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
            except (InFlightLost, ConnectionClosed, ApnsConnectionError, MaxAttemptsExceeded) as exc:
                return SendResult(message.key, error=connection_error(exc))
            except (ProtocolError, OSError) as exc:  # h2 or socket errors the library let through
                return SendResult(message.key, error=connection_error(exc))
        if result.is_successful:
            return SendResult(message.key, provider_message_id=result.notification_id)
        status = int(result.status) if result.status.isdigit() else 0
        reason = result.description or f"HTTP {result.status}"
        return SendResult(message.key, error=error_for(status, reason, result.timestamp))


async def _ignore_error(request: NotificationRequest, result: NotificationResult) -> None:
    """aioapns logs every error answer at ERROR level unless given this; results carry them."""


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
