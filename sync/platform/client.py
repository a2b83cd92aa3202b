"""One connection to the Experience Platform: the shared HTTP client, IMS tokens and retries.

:class:`Platform` holds one ``httpx.Client`` (HTTP/1.1, keep-alive, timeouts from
``PUSHGATE_AEP_TIMEOUT``, extra CAs from ``PUSHGATE_CA_BUNDLE`` for local peers) shared by every
call to IMS, the Platform APIs (``PUSHGATE_AEP_PLATFORM_URL``) and streaming ingestion
(``PUSHGATE_AEP_STREAMING_URL``). :meth:`Platform.request` adds the auth headers, fetches a new
token once when the Platform answers 401, and translates failures through
:mod:`sync.platform.errors`. :meth:`Platform.retrying` runs a call again on
:class:`~core.errors.RetryableError` with exponential back-off and jitter, honouring
``Retry-After``, a bounded number of times (tenacity).

Tests pass ``transport=httpx.MockTransport(handler)`` or point the URLs at the local peer, and
``sleep`` to run back-offs without waiting.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential_jitter

from core.config import Settings
from core.errors import RetryableError
from sync.platform import errors
from sync.platform.auth import ImsTokens

T = TypeVar("T")

#: Attempts of one call (the first included) before a RetryableError is given up.
ATTEMPTS = 6


class WaitRetryAfter(wait_base):
    """Wait what the Platform asked for in ``Retry-After``, else exponential back-off with jitter."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0) -> None:
        self._fallback = wait_exponential_jitter(initial=initial, max=maximum)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        asked = getattr(exc, "retry_after", None)
        if isinstance(asked, int | float):
            return float(asked)
        return float(self._fallback(retry_state))


class Platform:
    """IMS, the Platform APIs and streaming ingestion, through one HTTP client."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.attempts = attempts
        verify: ssl.SSLContext | bool = True
        if settings.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(settings.ca_bundle))
        self.http = httpx.Client(
            transport=transport,
            verify=verify,
            timeout=httpx.Timeout(settings.aep_timeout),
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
            headers={"User-Agent": "pushgate-sync"},
        )
        self.tokens = ImsTokens(settings, self.http)

    def __enter__(self) -> Platform:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- URLs ------------------------------------------------------------------------------------

    def api(self, path: str) -> str:
        """``PUSHGATE_AEP_PLATFORM_URL`` + ``path`` (``/data/foundation/...``)."""
        return f"{self.settings.aep_platform_url}{path}"

    def streaming(self, path: str) -> str:
        """``PUSHGATE_AEP_STREAMING_URL`` + ``path`` (``/collection/...``)."""
        return f"{self.settings.aep_streaming_url}{path}"

    # -- calls -----------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        ok: tuple[int, ...] = (200, 201, 204, 207),
        json: Any = None,
        content: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        call: str | None = None,
    ) -> httpx.Response:
        """One authenticated call; an answer outside ``ok`` raises the translated error.

        A 401 is answered once more with a freshly fetched token (the cached one may have been
        revoked); a second 401 is permanent.
        """
        call = call or f"{method} {httpx.URL(url).path}"
        for attempt in (1, 2):
            token = self.tokens.token()
            merged = {**self.tokens.headers(token), **(headers or {})}
            try:
                response = self.http.request(method, url, json=json, content=content, params=params, headers=merged)
            except httpx.TransportError as exc:
                raise errors.from_transport(exc, call) from exc
            if response.status_code == 401 and attempt == 1:
                self.tokens.invalidate(token)
                continue
            if response.status_code not in ok:
                raise errors.from_response(response, call)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def retrying(self, function: Callable[[], T], *, attempts: int | None = None) -> T:
        """``function()``, called again on RetryableError (back-off, Retry-After) up to ``attempts`` times."""
        retryer = Retrying(
            stop=stop_after_attempt(attempts or self.attempts),
            wait=WaitRetryAfter(),
            retry=retry_if_exception_type(RetryableError),
            sleep=self.sleep,
            reraise=True,
        )
        return retryer(function)
