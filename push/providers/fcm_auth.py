"""The OAuth access token of an FCM service account: google-auth's credential, refreshed ahead of expiry.

Contract: :meth:`AccessTokens.token` returns a valid access token, refreshing it (in a worker
thread, off the event loop) when it expires within :data:`REFRESH_MARGIN`;
:meth:`AccessTokens.refresh` replaces a token the server refused, once however many requests saw
it refused. Both raise google-auth's ``GoogleAuthError`` when no token can be had
(:func:`push.providers.fcm_errors.token_failure` says what that means).

The service account is read by firebase-admin's ``credentials.Certificate`` (its checks and its
scopes); the token request goes over an httpx client that trusts ``ca_bundle`` explicitly
(``requests`` would let ``REQUESTS_CA_BUNDLE`` override it). google-auth itself tries a 5xx token
endpoint three times, about 3 s, once per refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport
import httpx

from core.tls import client_context

REFRESH_MARGIN = timedelta(minutes=5)  # refresh before google-auth's own 3m45s staleness threshold


class AccessTokens:
    """The service account's OAuth access token. Use it on one event loop."""

    def __init__(self, credential: Any, ca_bundle: Path | None, timeout: float) -> None:
        self._credential = credential
        self._transport = _TokenTransport(client_context(ca_bundle), timeout)
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if self._due():
            async with self._lock:
                if self._due():
                    await asyncio.to_thread(self._credential.refresh, self._transport)
        return str(self._credential.token)

    def _due(self) -> bool:
        credential = self._credential
        if credential.token is None:
            return True
        return credential.expiry is not None and credential.expiry - _utcnow() < REFRESH_MARGIN

    async def refresh(self, stale: str) -> str:
        """A new token unless someone already replaced ``stale``."""
        async with self._lock:
            if self._credential.token == stale:
                await asyncio.to_thread(self._credential.refresh, self._transport)
        return str(self._credential.token)

    def close(self) -> None:
        self._transport.close()


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # google-auth keeps expiry as naive UTC


class _TokenTransport(google.auth.transport.Request):
    """google-auth's transport interface over httpx, so the OAuth call trusts an explicit context."""

    def __init__(self, context: Any, timeout: float) -> None:
        self._client = httpx.Client(verify=context, timeout=timeout)

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        try:
            response = self._client.request(
                method, url, content=body, headers=headers, timeout=timeout or httpx.USE_CLIENT_DEFAULT
            )
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(str(exc)) from exc  # type: ignore[no-untyped-call]
        return _TokenResponse(response)

    def close(self) -> None:
        self._client.close()


class _TokenResponse(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content
