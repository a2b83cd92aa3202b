"""IMS OAuth server-to-server access tokens, fetched once and reused until shortly before expiry.

Adobe's contract (developer.adobe.com/developer-console/docs/guides/authentication/
ServerToServerAuthentication/ims): ``POST {ims}/ims/token/v3``, form-encoded
``grant_type=client_credentials&client_id&client_secret&scope`` (scopes comma-separated) ->
``{"access_token", "token_type": "bearer", "expires_in": 86399}``. There is no refresh token: a
new token is simply asked for. Every Platform call then carries ``Authorization: Bearer``,
``x-api-key`` (the client id), ``x-gw-ims-org-id`` and ``x-sandbox-name``.

:class:`ImsTokens` is thread-safe: one fetch at a time, and every thread reuses the cached token
until :data:`REFRESH_MARGIN` before it expires (or 10 % of its life for short-lived tokens).
:meth:`ImsTokens.invalidate` drops it after a 401, so the next call fetches a new one. Neither
the secret nor the token is ever logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx

from core.config import Settings
from core.errors import PermanentError
from sync.platform import errors

log = logging.getLogger("pushgate.sync.platform")

#: A token is renewed this many seconds before it expires.
REFRESH_MARGIN = 300.0
TOKEN_PATH = "/ims/token/v3"


class ImsTokens:
    """The access token of one OAuth server-to-server credential."""

    def __init__(self, settings: Settings, http: httpx.Client, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.fetches = 0  # how many tokens were asked of IMS (tests and logs)

    def token(self) -> str:
        """A valid access token, from the cache or fetched now."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, lifetime = self._fetch()
                margin = min(REFRESH_MARGIN, lifetime / 10)
                self._renew_at = self._clock() + lifetime - margin
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the Platform answered 401 to it); a newer one is kept."""
        with self._lock:
            if self._token == token:
                self._token = None

    def headers(self, token: str) -> dict[str, str]:
        """The headers every Platform API call carries."""
        return {
            "Authorization": f"Bearer {token}",
            "x-api-key": self._settings.aep_client_id,
            "x-gw-ims-org-id": self._settings.aep_org_id,
            "x-sandbox-name": self._settings.aep_sandbox,
        }

    def _fetch(self) -> tuple[str, float]:
        settings = self._settings
        call = f"POST {settings.aep_ims_url}{TOKEN_PATH}"
        form = {
            "grant_type": "client_credentials",
            "client_id": settings.aep_client_id,
            "client_secret": settings.aep_client_secret,
            "scope": settings.aep_scopes,
        }
        try:
            response = self._http.post(f"{settings.aep_ims_url}{TOKEN_PATH}", data=form)
        except httpx.TransportError as exc:
            raise errors.from_transport(exc, call) from exc
        if response.status_code != 200:
            raise errors.from_response(response, call)
        try:
            body = response.json()
            token, lifetime = str(body["access_token"]), float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"{call}: the answer has no access_token") from exc
        if not token or lifetime <= 0:
            raise PermanentError(f"{call}: the answer has an empty or expired token")
        self.fetches += 1
        log.info("IMS access token obtained for client %s, valid %.0f s", settings.aep_client_id, lifetime)
        return token, lifetime
