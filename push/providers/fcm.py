"""FCM HTTP v1 provider: one ``messages:send`` POST per message, on pushgate's own HTTP/2 connections.

Contract: :class:`FcmProvider` is the :class:`~push.providers.base.Provider` for Android. It checks
each payload against the Message resource (:mod:`push.providers.fcm_message`; a payload of the
wrong shape is PAYLOAD_REJECTED without a request), sends the rest of a batch as the JSON pushgate
built plus the token, each request within ``timeout`` seconds (waiting for a stream, connecting,
sending and the answer), and answers one :class:`~push.providers.base.SendResult` per message; it
never raises for a message's failure. What an answer means is :mod:`push.providers.fcm_errors`.

- Transport: :class:`~push.providers.h2_client.H2Pool`, up to ``max_connections`` connections of
  up to 100 streams each, fewer when the server's SETTINGS say so (FCM documents no other limit on
  connections or streams; its quota is per project and minute: push.throttling), the
  same lean HTTP/2 the APNs connection uses. firebase-admin's own path (httpx and its encoder)
  cost ~0.9 ms of CPU per message; this one ~0.2 ms (bench/send.py).
- Credentials: firebase-admin reads the service account; google-auth refreshes its OAuth token
  (:mod:`push.providers.fcm_auth`). A 401 without an FCM error code (our access token refused,
  e.g. the peer restarted) refreshes the token once and re-sends that request, as firebase-admin's
  auth flow does. A token endpoint that refuses our assertion fails every message of the batch
  with AUTH; one that is down (5xx or unreachable) with UNAVAILABLE, and nothing is sent.
- No retries of its own beyond a request that certainly was not processed (refused stream, GOAWAY,
  connection closed before it went out: sent again on another connection): 429 and 5xx answers
  and lost connections are reported, and the engine's back-off is the only retry policy. A 429
  QUOTA_EXCEEDED pauses the delivery's Android sends in the engine, not here (see push.engine).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import firebase_admin  # type: ignore[import-untyped]  # firebase-admin ships no type information
import google.auth.exceptions
from firebase_admin import credentials as firebase_credentials

from core.tls import client_context
from push.providers.base import ErrorKind, PushError, PushMessage, SendResult
from push.providers.fcm_auth import AccessTokens
from push.providers.fcm_errors import answer_error, error_body, fcm_error_code, token_failure, transport_error
from push.providers.fcm_message import problem, request_body
from push.providers.h2_client import ConnectFailed, H2Pool, H2Response, InFlightLost, NotProcessed

FCM_ENDPOINT = "https://fcm.googleapis.com"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 4
_CLIENT = f"fire-admin-python/{firebase_admin.__version__}"  # the credentials and vocabulary are firebase-admin's


class FcmProvider:
    """Sends pushes with one Firebase service account. Create and use it on one event loop.

    ``endpoint`` is the FCM base URL (default Google's; PUSHGATE_FCM_ENDPOINT for a local peer); the
    OAuth URL is the account's ``token_uri``. ``ca_bundle`` adds trusted CAs for both. A malformed
    service account or endpoint raises ValueError here; everything that goes wrong while sending
    is a per-message result.
    """

    platform = "android"

    def __init__(
        self,
        service_account: Mapping[str, Any],
        *,
        endpoint: str = "",
        ca_bundle: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        certificate = firebase_credentials.Certificate(dict(service_account))
        if not certificate.project_id:
            raise ValueError("the service account has no project_id")
        self.project_id: str = certificate.project_id
        self.endpoint = (endpoint or FCM_ENDPOINT).rstrip("/")
        url = urlsplit(self.endpoint)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"the FCM endpoint must be an https:// URL, not {self.endpoint!r}")
        self.host, self.port = url.hostname, url.port or 443
        self.timeout = timeout
        self.max_connections = max_connections
        self._ca_bundle = ca_bundle
        self._path = f"{url.path}/v1/projects/{self.project_id}/messages:send"
        self._authority = url.netloc.rpartition("@")[2]
        self._tokens = AccessTokens(certificate.get_credential(), ca_bundle, timeout)
        self._pool: H2Pool | None = None
        self._headers: tuple[str, list[tuple[bytes, bytes]]] = ("", [])
        self._closed = False

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        if self._closed:
            raise RuntimeError("FcmProvider.send after close()")
        results: list[SendResult] = []
        ready: list[PushMessage] = []
        for item in messages:
            why = problem(item.payload)
            if why is None:
                ready.append(item)
            else:
                error = PushError(ErrorKind.PAYLOAD_REJECTED, "INVALID_ARGUMENT", message=why)
                results.append(SendResult(item.key, error=error))
        if not ready:
            return results
        try:
            await self._tokens.token()
        except google.auth.exceptions.GoogleAuthError as exc:
            error = token_failure(exc)
            return results + [SendResult(item.key, error=error) for item in ready]
        pool = self._ensure_pool()
        # A fixed set of sender coroutines over the batch rather than one Task per message: the
        # pool's streams bound what is in flight either way, and Tasks cost CPU per message.
        pending: Iterator[PushMessage] = iter(ready)

        async def sender() -> None:
            for item in pending:
                results.append(await self._send_one(pool, item))

        await asyncio.gather(*(sender() for _ in range(min(pool.capacity, len(ready)))))
        return results

    async def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._tokens.close()

    # internals ----------------------------------------------------------------------------------

    def _ensure_pool(self) -> H2Pool:
        """The connections, made on first use inside the running loop (they bind to it)."""
        if self._pool is None:
            context = client_context(self._ca_bundle)
            self._pool = H2Pool(
                self.host, self.port, context, max_connections=self.max_connections, connect_timeout=self.timeout
            )
        return self._pool

    async def _send_one(self, pool: H2Pool, item: PushMessage) -> SendResult:
        body = request_body(item.payload, item.token)
        try:
            async with asyncio.timeout(self.timeout):  # unlike wait_for (3.11), no extra Task
                answer = await self._post(pool, body)
        except TimeoutError:
            error = transport_error("timeout", f"no answer within {self.timeout:g} s", timed_out=True)
            return SendResult(item.key, error=error)
        except (NotProcessed, InFlightLost, ConnectFailed) as exc:
            return SendResult(item.key, error=transport_error(type(exc).__name__, str(exc)))
        except google.auth.exceptions.GoogleAuthError as exc:  # the token ran out mid-batch
            return SendResult(item.key, error=token_failure(exc))
        if 200 <= answer.status < 300:
            return SendResult(item.key, provider_message_id=_message_id(answer.body))
        return SendResult(item.key, error=answer_error(answer.status, answer.headers, answer.body))

    async def _post(self, pool: H2Pool, body: bytes) -> H2Response:
        token = await self._tokens.token()
        answer = await pool.request(self._headers_for(token), body)
        if answer.status != 401 or fcm_error_code(error_body(answer.body)) is not None:
            return answer
        try:
            token = await self._tokens.refresh(token)
        except google.auth.exceptions.GoogleAuthError:
            return answer
        return await pool.request(self._headers_for(token), body)

    def _headers_for(self, token: str) -> list[tuple[bytes, bytes]]:
        """The request headers, the same for every message while the access token lasts: encoded to
        bytes once (h2 would encode each str on every request), and HPACK then sends each as one
        index byte."""
        if self._headers[0] != token:
            headers = [
                (":method", "POST"),
                (":scheme", "https"),
                (":path", self._path),
                (":authority", self._authority),
                ("content-type", "application/json"),
                ("x-goog-api-format-version", "2"),
                ("x-firebase-client", _CLIENT),
                ("authorization", f"Bearer {token}"),
            ]
            self._headers = (token, [(name.encode(), value.encode()) for name, value in headers])
        return self._headers[1]


def _message_id(body: bytes) -> str | None:
    """``projects/p/messages/0:123%abc`` -> ``0:123%abc``."""
    try:
        name = json.loads(body).get("name")
    except (ValueError, AttributeError):
        return None
    return name.rpartition("/messages/")[2] if isinstance(name, str) else None
