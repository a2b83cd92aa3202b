"""A second FCM HTTP v1 peer, independent of :mod:`push.peers.fcm`: a raw ASGI app served by hypercorn.

The provider tests also run against it, so that the provider's HTTP/2 client is not fitted to the
bundled emulator's server: hypercorn has its own HTTP/2 settings, flow control and connection
handling (h2 and http/1.1 by ALPN on one TLS port, or h11/h2c without TLS). It shares no code with
the emulator (only the :class:`~push.peers.inbox.Inbox`) but has its public interface and answers
what the tests rely on the same way: ``POST /token`` (the service-account JWT-bearer grant, RS256
checked with pyjwt against the account's key) and ``POST /v1/projects/{project}/messages:send``
(bearer token of that project, one target, string data values, the 4096-byte limit, the
token-prefix injections with the emulator's statuses, errorCodes, messages and Retry-After), each
send recorded under ``"android"`` with the emulator's fields.

Left out on purpose: the full Message schema (unknown fields, enums, durations, labels, links), the
``/_emulator/inbox`` API, ``open()``/``close()`` on a caller's loop, a command line.

Hypercorn's defaults are kept, quirks included (100 concurrent streams, and a stream over that limit
is a connection error; 64 KiB windows; idle connections closed after 5 s without GOAWAY) except
one: it sends GOAWAY after 1000 requests on a connection but then drops the answers of the streams
it already took (processed, yet never answered), which no client can handle, so that limit is
lifted. ``hypercorn_options`` sets any ``hypercorn.config.Config`` attribute (e.g.
``{"keep_alive_max_requests": 1000}`` to see that behaviour).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypercorn.asyncio import serve
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from push.peers.inbox import Inbox

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
SCOPES = {"https://www.googleapis.com/auth/firebase.messaging", "https://www.googleapis.com/auth/cloud-platform"}
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
LIFETIME = 3600
TARGETS = ("token", "topic", "condition", "fid")
SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
PROJECT_OF_EMAIL = re.compile(r"@([a-z0-9-]+)\.iam\.gserviceaccount\.com$")
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
BAD_TOKEN = "The registration token is not a valid FCM registration token"
THIRD_PARTY = "Auth error from APNS or Web Push Service"
SHORT_LIVED = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
_QUOTA = (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for message target.", True)
_UNAVAILABLE = (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", True)
_INTERNAL = (500, "INTERNAL", "INTERNAL", "Internal error encountered.", False)
# token prefix -> (status, google.rpc status, FcmError errorCode, message, Retry-After?); first match wins,
# "-once-" ones fail the first request for a token only; "slow-" succeeds after slow_seconds.
INJECTIONS = {
    "quota-once-": _QUOTA,
    "unavailable-once-": _UNAVAILABLE,
    "internal-once-": _INTERNAL,
    "unregistered-": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.", False),
    "invalid-": (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", BAD_TOKEN, False),
    "mismatch-": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch", False),
    "quota-": _QUOTA,
    "unavailable-": _UNAVAILABLE,
    "internal-": _INTERNAL,
    "thirdparty-": (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", THIRD_PARTY, False),
}

Reply = tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]  # status, JSON body, extra headers
Accounts = Iterable[Mapping[str, Any]] | Callable[[str], rsa.RSAPublicKey | None]


def google_error(status: int, code: str, message: str, error_code: str | None = None) -> Reply:
    """Google's error body, with the FcmError detail when ``error_code`` is given."""
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if error_code:
        error["details"] = [{"@type": FCM_ERROR, "errorCode": error_code}]
    return status, {"error": error}, []


class _Refused(Exception):
    """A refused grant: Google's ``{"error", "error_description"}`` with a status."""

    def reply(self, status: int = 400) -> Reply:
        return status, {"error": self.args[0], "error_description": self.args[1]}, []


class _Config(Config):
    """Hypercorn's config, serving a socket bound beforehand (the port is known at once)."""

    def __init__(self, sockets: Sockets, context: ssl.SSLContext | None) -> None:
        self._sockets, self._context = sockets, context
        self.errorlog = logging.getLogger(__name__)

    def create_sockets(self) -> Sockets:
        return self._sockets

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._context

    @property
    def ssl_enabled(self) -> bool:
        return self._context is not None


class _Listener(socket.socket):
    """A listening socket that remembers the connections it accepted, to cut those still open at stop:
    asyncio's ``Server.wait_closed`` (which hypercorn awaits) waits for every connection, and a TLS
    close for the client's close_notify, which a client whose loop is not running never sends."""

    def __init__(self, fileno: int) -> None:
        super().__init__(fileno=fileno)
        self.accepted: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def accept(self) -> tuple[socket.socket, Any]:
        connection, address = super().accept()
        self.accepted.add(connection)
        return connection, address

    async def cut_after(self, stopping: asyncio.Event, grace: float) -> None:
        await stopping.wait()
        await asyncio.sleep(grace)
        for connection in list(self.accepted):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class FcmHypercorn:
    """The peer on hypercorn, on a daemon thread with its own loop, with the interface of
    ``FcmEmulator``. TLS with ``ssl_context``, or with ``certfile`` (key and chain in one PEM, such as
    ``LocalTLS.server_path``) and hypercorn's own TLS settings; plain HTTP with neither.
    ``accounts``: service-account dicts, or a ``client_email -> public key`` lookup (``accounts_from``)."""

    def __init__(
        self,
        accounts: Accounts,
        *,
        inbox: Inbox | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        certfile: str | Path | None = None,
        slow_seconds: float = 2.0,
        retry_after: int = 1,
        hypercorn_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(accounts):
            accounts = {a["client_email"]: _public_key(a["private_key"]) for a in accounts}.get
        if certfile is not None and ssl_context is None:
            base = Config()
            base.certfile = base.keyfile = str(certfile)
            ssl_context = base.create_ssl_context()
        self.key_of, self.ssl_context, self.host, self.port = accounts, ssl_context, host, port
        self.inbox = inbox if inbox is not None else Inbox()
        self.slow_seconds, self.retry_after = slow_seconds, retry_after
        self.hypercorn_options = {"keep_alive_max_requests": 2**62, **(hypercorn_options or {})}
        self._lock = threading.Lock()  # the state below is also changed from the tests' thread
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (client email, expiry)
        self._failed_once: set[str] = set()
        self._token_failure: int | None = None
        self._ids = itertools.count(time.time_ns() // 1000)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def reset(self) -> None:
        """Empty the inbox, restore the token endpoint, forget which tokens failed once."""
        self.inbox.clear()
        with self._lock:
            self._token_failure = None
            self._failed_once.clear()

    def fail_token_endpoint(self, status: int | None) -> None:
        """Make ``/token`` answer ``status`` (5xx: an outage, 4xx: a refused grant; None: normal)."""
        with self._lock:
            self._token_failure = status

    def forget_tokens(self) -> None:
        """Refuse every access token issued so far, as after a restart."""
        with self._lock:
            self._tokens.clear()

    async def _app(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                self._started.set()  # the listener queues connections already
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body = b""
        while (event := await receive())["type"] == "http.request":
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path, delay = scope["path"], 0.0
        if path == "/token" and scope["method"] == "POST":
            status, document, extra = self._token(body, f"{scope['scheme']}://{headers.get('host')}/token")
        elif (match := SEND_PATH.match(path)) and scope["method"] == "POST":
            (status, document, extra), delay = self._send(match.group(1), headers, body)
        else:
            status, document, extra = google_error(404, "NOT_FOUND", f"The requested URL {path} was not found.")
        if delay:  # slow-: answer later, or never if the client goes (hypercorn would block our send)
            with contextlib.suppress(TimeoutError):
                if (await asyncio.wait_for(receive(), delay))["type"] == "http.disconnect":
                    return
        extra = [(b"content-type", b"application/json; charset=UTF-8"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": json.dumps(document).encode(), "more_body": False})

    def _token(self, body: bytes, own_url: str) -> Reply:
        with self._lock:
            failure = self._token_failure
        try:
            if failure is not None and failure >= 500:
                raise _Refused("internal_failure", "Backend Error")
            if failure is not None:
                raise _Refused("invalid_grant", "Invalid grant: account not found")
            email = self._grant(urllib.parse.parse_qs(body.decode("utf-8", "replace")), own_url)
        except _Refused as refused:
            return refused.reply(failure or 400)
        token = "ya29.hypercorn." + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (email, time.monotonic() + LIFETIME)
        return 200, {"access_token": token, "expires_in": LIFETIME, "token_type": "Bearer"}, []

    def _grant(self, form: Mapping[str, list[str]], own_url: str) -> str:
        """The client email of a valid JWT-bearer grant, else raises :class:`_Refused`."""
        grant, assertion = form.get("grant_type", [""])[0], form.get("assertion", [""])[0]
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            raise _Refused("unsupported_grant_type", f"Invalid grant_type: {grant}")
        try:
            email = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            key = self.key_of(email) if isinstance(email, str) else None
            if key is None:
                raise _Refused("invalid_grant", "Invalid grant: account not found")
            audience, required = [GOOGLE_TOKEN_URL, own_url], ["iss", "aud", "iat", "exp"]
            claims = jwt.decode(assertion, key, ["RS256"], audience=audience, leeway=300, options={"require": required})
        except jwt.DecodeError as exc:  # malformed, or signed with another key
            raise _Refused("invalid_grant", "Invalid JWT Signature.") from exc
        except jwt.InvalidAudienceError as exc:
            raise _Refused("invalid_grant", f"Invalid JWT: Failed audience check ({GOOGLE_TOKEN_URL})") from exc
        except jwt.InvalidTokenError as exc:
            raise _Refused("invalid_grant", SHORT_LIVED) from exc
        if claims["exp"] - claims["iat"] > LIFETIME:
            raise _Refused("invalid_grant", SHORT_LIVED)
        if not SCOPES & set(str(claims.get("scope", "")).split()):
            raise _Refused("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return str(email)

    def _send(self, project: str, headers: Mapping[str, str], body: bytes) -> tuple[Reply, float]:
        """Answer and record one ``messages:send``; also returns how long to wait before answering."""
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        message = document.get("message") if isinstance(document, dict) else None
        record: dict[str, Any] = {"token": None, "payload": None, "project": project, "validate_only": False}
        record |= {"message_id": None, "headers": {k: v for k, v in headers.items() if k != "authorization"}}
        if isinstance(message, dict):
            record["payload"], record["token"] = message, message.get("token", message.get("fid"))
        reply, delay = self._send_reply(project, headers.get("authorization", ""), document, record)
        error = reply[1].get("error")
        reason = (error.get("details") or [{"errorCode": error["status"]}])[0]["errorCode"] if error else None
        self.inbox.add("android", record | {"status": reply[0], "reason": reason})
        return reply, delay

    def _send_reply(
        self, project: str, authorization: str, document: Any, record: dict[str, Any]
    ) -> tuple[Reply, float]:
        scheme, _, bearer = authorization.partition(" ")
        with self._lock:
            issued = self._tokens.get(bearer) if scheme == "Bearer" else None
        if issued is None or issued[1] < time.monotonic():
            return google_error(401, "UNAUTHENTICATED", UNAUTHENTICATED), 0.0
        owner = PROJECT_OF_EMAIL.search(issued[0])
        if owner and owner.group(1) != project:
            denied = f"Permission 'cloudmessaging.messages.create' denied on resource 'projects/{project}'."
            return google_error(403, "PERMISSION_DENIED", denied), 0.0
        problem = next(_problems(document), None)
        if problem is not None:
            return google_error(400, "INVALID_ARGUMENT", *problem), 0.0
        record["validate_only"] = bool(document.get("validate_only", False))
        token = record["token"] or ""
        prefix = next((p for p in INJECTIONS if token.startswith(p)), None)
        if prefix and prefix.endswith("-once-"):
            with self._lock:
                prefix = None if token in self._failed_once else prefix
                self._failed_once.add(token)
        if prefix:
            status, code, error_code, text, retry = INJECTIONS[prefix]
            status, body, _ = google_error(status, code, text, error_code)
            return (status, body, [(b"retry-after", str(self.retry_after).encode())] if retry else []), 0.0
        message_id = "fake_message_id" if record["validate_only"] else f"0:{next(self._ids)}%hypercorn"
        record["message_id"] = message_id
        delay = self.slow_seconds if token.startswith("slow-") else 0.0
        return (200, {"name": f"projects/{project}/messages/{message_id}"}, []), delay

    def start(self) -> FcmHypercorn:
        """Bind and listen here (the port is known, connections queue at once), then serve from a
        daemon thread with its own loop; returns once hypercorn has started the app."""
        listener = _Listener(fileno=socket.create_server((self.host, self.port), backlog=1024).detach())
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        tls = self.ssl_context is not None
        config = _Config(Sockets([listener] if tls else [], [] if tls else [listener], []), self.ssl_context)
        for name, value in self.hypercorn_options.items():
            setattr(config, name, value)
        failure: list[BaseException] = []
        self._started.clear()

        async def run() -> None:
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            cutter = asyncio.create_task(listener.cut_after(self._stopping, grace=1.0))
            try:
                await serve(self._app, config, shutdown_trigger=self._stopping.wait, mode="asgi")
            except BaseException as exc:
                failure.append(exc)
                raise
            finally:
                cutter.cancel()
                self._started.set()

        self._thread = threading.Thread(target=asyncio.run, args=(run(),), name="fcm-hypercorn", daemon=True)
        self._thread.start()
        if not self._started.wait(10) or failure:
            raise RuntimeError("hypercorn did not start the FCM peer") from (failure[0] if failure else None)
        return self

    def stop(self) -> None:
        """Stop serving: hypercorn closes idle connections, and any still open a second later are cut."""
        if self._thread is None or self._loop is None or self._stopping is None:
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> FcmHypercorn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _problems(document: Any) -> Iterator[tuple[str, str | None]]:
    """What FCM refuses as INVALID_ARGUMENT (message, FcmError errorCode): a compact subset of its checks."""
    message = document.get("message") if isinstance(document, dict) else None
    if not isinstance(message, dict) or set(document) - {"message", "validate_only"}:
        yield "Request contains an invalid argument.", None
        return
    targets = [name for name in TARGETS if name in message]
    if len(targets) != 1:
        yield ("Recipient of the message is not set." if not targets else "oneof field 'target' is already set."), None
    android = message.get("android")
    android = android if isinstance(android, dict) else {}
    for path, data in (("message.data", message.get("data")), ("message.android.data", android.get("data"))):
        for index, value in enumerate(data.values() if isinstance(data, dict) else ()):
            if not isinstance(value, str):
                yield f"Invalid value at '{path}[{index}].value' (TYPE_STRING), {json.dumps(value)}", None
    if message.get("token", message.get("fid")) == "":
        yield BAD_TOKEN, "INVALID_ARGUMENT"
    payload = {k: v for k, v in message.items() if k not in TARGETS}
    if len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()) > 4096:
        yield "Message is too big", "INVALID_ARGUMENT"


def _public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the service account's private key is not RSA")
    return key.public_key()
