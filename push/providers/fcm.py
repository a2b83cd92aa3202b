"""FCM HTTP v1 provider: one result per message, through firebase-admin's semantics, over HTTP/2.

Two send paths share everything but the loop that drives the requests:

``direct`` (the default)
    firebase-admin builds and validates each message (``messaging.Message`` and its own encoder)
    and parses every error response into its ``FirebaseError`` classes; the requests go out over
    one shared ``httpx.AsyncClient(http2=True)``, at most ``concurrency`` in flight, so one slow
    answer holds up nothing but itself.
``admin``
    ``messaging.send_each_async`` itself, in chunks of 500 (each chunk waits for its slowest
    message), with the App's messaging service replaced (private API, pinned to firebase-admin
    7.7.0, guarded by a test) so that it sends to ``endpoint`` over the same shared client.

Cost, measured against the emulator in another process on 2 cores: both paths spend about
1.0-1.3 ms of CPU per message, nearly all of it in httpx, httpcore, h2 and TLS, and cannot be told
apart on this machine; stock ``send_each_async`` spends 10-25 % more (a ``requests`` session
built per request by its auth flow, its retrying transport). Most of the 1.8 ms once measured
here was httpcore failing to import ``sniffio`` on every lock it makes: keep ``sniffio`` installed.
``direct`` is the default for what it avoids: private API on the send path, head-of-line blocking
per 500-chunk, 500 tasks per chunk and a second encoding of each message.

Both paths:

- Credentials: the service account goes through ``firebase_admin.credentials.Certificate``; its
  google-auth credential is refreshed ahead of expiry, off the event loop, over an HTTP client that
  trusts ``ca_bundle`` explicitly (``requests`` would let ``REQUESTS_CA_BUNDLE`` override it). A
  401 without an FCM error code (our access token refused, e.g. the peer restarted) refreshes the
  token once and re-sends that request, as firebase-admin's own auth flow does. (google-auth
  itself tries a 5xx token endpoint three times, about 3 s, once per refresh.)
- No retries of our own: firebase-admin's retry of 500/503 (about 7 s per message) is not used,
  429 and transport errors are reported, and the engine's back-off is the only retry policy.
- Each request has ``timeout`` seconds (connect, write, read, and waiting for the pool).
- Outcomes map to :class:`~push.providers.base.ErrorKind` in :func:`push_error`. A token endpoint
  that refuses our assertion fails every message of the batch with AUTH; one that is down (5xx or
  unreachable) with UNAVAILABLE. Nothing is sent then, and ``send`` never raises for it.

``PushMessage.payload`` is the HTTP v1 ``message`` object without its target; the provider adds
``token``. A payload firebase-admin refuses to encode is PAYLOAD_REJECTED without a request.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any, Literal

import firebase_admin  # type: ignore[import-untyped]  # firebase-admin ships no type information
import google.auth.exceptions
import google.auth.transport
import httpx
from firebase_admin import _utils as firebase_utils
from firebase_admin import credentials as firebase_credentials
from firebase_admin import exceptions as firebase_exceptions
from firebase_admin import messaging

from core.tls import client_context
from push.providers.base import ErrorKind, PushError, PushMessage, SendResult

FCM_ENDPOINT = "https://fcm.googleapis.com"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
MAX_ADMIN_BATCH = 500  # send_each_async refuses more
_JSON = {"content-type": "application/json"}
_FCM_HEADERS = {  # what firebase-admin's messaging service sends
    "x-goog-api-format-version": "2",
    "x-firebase-client": f"fire-admin-python/{firebase_admin.__version__}",
}
REFRESH_MARGIN = timedelta(minutes=5)  # refresh before google-auth's own 3m45s staleness threshold
SendPath = Literal["direct", "admin"]
DEFAULT_PATH: SendPath = "direct"

# firebase-admin's private pieces this module relies on (pinned: firebase-admin==7.7.0).
# tests/push/providers/test_fcm.py::test_private_firebase_admin_hooks_still_exist checks each one.
_MessagingService = messaging._MessagingService
_MESSAGING_SERVICE_NAME = messaging._MESSAGING_ATTRIBUTE
_parse_httpx_error: Callable[..., firebase_exceptions.FirebaseError] = firebase_utils.handle_platform_error_from_httpx
_build_fcm_error = _MessagingService._build_fcm_error_httpx


class FcmProvider:
    """Sends pushes with one Firebase service account. Create and use it on one event loop.

    ``endpoint`` is the FCM base URL (default Google's; PUSHGATE_FCM_ENDPOINT for a local peer); the
    OAuth URL is the account's ``token_uri``. ``ca_bundle`` adds trusted CAs for both. ``timeout``
    bounds each request. ``concurrency`` caps the requests in flight on the direct path (HTTP/2
    streams on one connection; httpcore uses at most 100). A malformed service account raises
    ValueError here; everything that goes wrong while sending is a per-message result.
    """

    platform = "android"

    def __init__(
        self,
        service_account: Mapping[str, Any],
        *,
        endpoint: str = "",
        ca_bundle: Path | None = None,
        timeout: float = 10.0,
        path: SendPath = DEFAULT_PATH,
        concurrency: int = 100,
    ) -> None:
        certificate = firebase_credentials.Certificate(dict(service_account))
        if not certificate.project_id:
            raise ValueError("the service account has no project_id")
        self.project_id: str = certificate.project_id
        self.endpoint = (endpoint or FCM_ENDPOINT).rstrip("/")
        self.path: SendPath = path
        self._http = _FcmHttp(certificate.get_credential(), ca_bundle, timeout)
        self._url = f"{self.endpoint}/v1/projects/{self.project_id}/messages:send"
        self._parsed_url = httpx.URL(self._url)  # parsed once: httpx re-parses a str on every request
        self._concurrency = max(1, concurrency)
        self._app: Any = None
        if path == "admin":
            self._app = firebase_admin.initialize_app(
                certificate, {"projectId": self.project_id}, name=f"pushgate-fcm-{uuid.uuid4().hex}"
            )
            self._app._get_service(
                _MESSAGING_SERVICE_NAME, lambda app: _RedirectedMessagingService(app, self._url, self._http)
            )
        elif path != "direct":
            raise ValueError(f"unknown FCM send path {path!r}")

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        ready: list[tuple[PushMessage, messaging.Message, str]] = []
        for item in messages:
            try:
                message = to_message(item.payload, item.token)
                ready.append((item, message, str(message)))  # str() runs firebase-admin's encoder
            except (ValueError, TypeError) as exc:
                error = PushError(ErrorKind.PAYLOAD_REJECTED, "INVALID_ARGUMENT", message=str(exc))
                results.append(SendResult(item.key, error=error))
        if not ready:
            return results
        try:
            await self._http.tokens.token()
        except google.auth.exceptions.GoogleAuthError as exc:
            error = token_failure(exc)
            return results + [SendResult(item.key, error=error) for item, _, _ in ready]
        if self.path == "admin":
            results += await self._send_admin(ready)
        else:
            results += await self._send_direct(ready)
        return results

    async def close(self) -> None:
        await self._http.aclose()  # on this loop, before the App goes
        if self._app is not None:
            firebase_admin.delete_app(self._app)
            self._app = None

    # -- direct: firebase-admin's encoder and error parsing, our request loop ----------------

    async def _send_direct(self, ready: list[tuple[PushMessage, messaging.Message, str]]) -> list[SendResult]:
        pending: Iterator[tuple[PushMessage, messaging.Message, str]] = iter(ready)
        results: list[SendResult] = []

        async def worker() -> None:
            for item, _, encoded in pending:
                results.append(await self._post(item.key, f'{{"message":{encoded}}}'.encode()))

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(ready)))))
        return results

    async def _post(self, key: int, body: bytes) -> SendResult:
        try:
            response = await self._http.request("POST", self._parsed_url, content=body, headers=_JSON)
        except httpx.HTTPError as exc:
            return SendResult(key, error=push_error(_parse_httpx_error(exc, _build_fcm_error)))
        if response.is_success:
            return SendResult(key, provider_message_id=_message_id(response))
        status_error = httpx.HTTPStatusError(
            f"HTTP {response.status_code}", request=response.request, response=response
        )
        return SendResult(key, error=push_error(_parse_httpx_error(status_error, _build_fcm_error)))

    # -- admin: messaging.send_each_async ------------------------------------------------------

    async def _send_admin(self, ready: list[tuple[PushMessage, messaging.Message, str]]) -> list[SendResult]:
        results: list[SendResult] = []
        for start in range(0, len(ready), MAX_ADMIN_BATCH):
            chunk = ready[start : start + MAX_ADMIN_BATCH]
            try:
                batch = await messaging.send_each_async([message for _, message, _ in chunk], app=self._app)
            except firebase_exceptions.FirebaseError as exc:  # the whole chunk failed (UnknownError)
                error = push_error(exc)
                results += [SendResult(item.key, error=error) for item, _, _ in chunk]
                continue
            for (item, _, _), response in zip(chunk, batch.responses, strict=True):
                if response.success:
                    results.append(SendResult(item.key, provider_message_id=_id_of(response.message_id)))
                else:
                    results.append(SendResult(item.key, error=push_error(response.exception)))
        return results


class _RedirectedMessagingService(messaging._MessagingService):  # type: ignore[misc]
    """firebase-admin's messaging service, sending to our URL through our client.

    ``FCM_URL`` is read through the base class by name, so only an instance attribute set after
    ``super().__init__`` redirects it (docs/local-peers.md, "FCM through firebase-admin").
    """

    def __init__(self, app: Any, url: str, http: _FcmHttp) -> None:
        super().__init__(app)
        self._fcm_url = url
        self._client.close()  # the requests session of the synchronous API, never used here
        # The httpx client super() made is dropped unopened: ours trusts ca_bundle explicitly, has no
        # retrying transport and uses the provider's credentials refresh.
        self._async_client = _SharedClient(http)

    def close(self) -> None:
        """Nothing to do: the provider closes the shared client on its loop (the base class would
        call ``asyncio.run`` from inside the running loop)."""


class _SharedClient:
    """What ``send_each_async`` calls on ``_async_client``: ``request`` raising for error statuses."""

    def __init__(self, http: _FcmHttp) -> None:
        self._http = http

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = await self._http.request(method, url, **kwargs)
        return response.raise_for_status()

    async def aclose(self) -> None:
        """The provider owns the client."""


# ---------------------------------------------------------------------------------------------
# Credentials.


class _AccessTokens:
    """The service account's OAuth access token, refreshed ahead of expiry in a worker thread."""

    def __init__(self, credential: Any, context: Any, timeout: float) -> None:
        self._credential = credential
        self._transport = _TokenTransport(context, timeout)
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


class _FcmHttp:
    """The one HTTP/2 client of a provider, with its access token.

    Each request carries the current token; a 401 that is about the token (no FcmError code, unlike
    THIRD_PARTY_AUTH_ERROR) refreshes it once and re-sends, as firebase-admin's auth flow does; a
    failed refresh leaves the 401. The header is set here rather than by an ``httpx.Auth`` flow,
    whose per-request generator machinery costs more than the request it guards.
    """

    def __init__(self, credential: Any, ca_bundle: Path | None, timeout: float) -> None:
        self.tokens = _AccessTokens(credential, client_context(ca_bundle), timeout)
        self.client = httpx.AsyncClient(
            http2=True,
            verify=client_context(ca_bundle),  # a context of its own: httpcore sets ALPN on it
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
            cookies=_NoCookies(),
            headers=_FCM_HEADERS,
        )

    async def request(
        self, method: str, url: str | httpx.URL, *, headers: Mapping[str, str], **kwargs: Any
    ) -> httpx.Response:
        try:
            token = await self.tokens.token()
        except google.auth.exceptions.GoogleAuthError as exc:  # the token ran out mid-batch
            raise _NoAccessToken(exc) from exc
        response = await self.client.request(
            method, url, headers={**headers, "authorization": f"Bearer {token}"}, **kwargs
        )
        if response.status_code != 401 or _fcm_error_code(response) is not None:
            return response
        try:
            token = await self.tokens.refresh(token)
        except google.auth.exceptions.GoogleAuthError:
            return response
        return await self.client.request(method, url, headers={**headers, "authorization": f"Bearer {token}"}, **kwargs)

    async def aclose(self) -> None:
        await self.client.aclose()
        self.tokens.close()


class _NoAccessToken(httpx.TransportError):
    """No access token could be had for a request. An httpx error, so that both send paths report
    it per message (firebase-admin's ``send_each_async`` would abort the whole gather on anything
    else while the other requests go on unseen)."""

    def __init__(self, error: google.auth.exceptions.GoogleAuthError) -> None:
        super().__init__(str(error))
        self.error = error


class _NoCookies(CookieJar):
    """FCM sets no cookies; skip the cookie jar's work on every response."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# Outcomes.

_INVALID_TOKEN = re.compile(r"registration token.*not a valid|invalid registration token", re.IGNORECASE)


def push_error(exc: firebase_exceptions.FirebaseError) -> PushError:  # noqa: PLR0911 -- one return per rule
    """Translate firebase-admin's error for one message into a :class:`PushError`."""
    response: httpx.Response | None = getattr(exc, "http_response", None)
    if response is None:
        return _transport_error(exc)
    status = response.status_code
    reason = _fcm_error_code(response) or _google_status(response) or str(exc.code)
    retry_after = _retry_after(response)

    def error(kind: ErrorKind) -> PushError:
        return PushError(kind, reason, status=status, message=str(exc), retry_after=retry_after)

    if isinstance(exc, messaging.UnregisteredError):
        return error(ErrorKind.TOKEN_GONE)
    if isinstance(exc, messaging.SenderIdMismatchError):
        return error(ErrorKind.TOKEN_MISMATCH)
    if isinstance(exc, messaging.QuotaExceededError) or status == 429:
        return error(ErrorKind.THROTTLED)
    if isinstance(exc, messaging.ThirdPartyAuthError) or status in (401, 403):
        return error(ErrorKind.AUTH)
    if isinstance(exc, firebase_exceptions.InvalidArgumentError) or status in (400, 413):
        invalid_token = _INVALID_TOKEN.search(str(exc)) is not None
        return error(ErrorKind.TOKEN_INVALID if invalid_token else ErrorKind.PAYLOAD_REJECTED)
    if status == 404:
        # A 404 without UNREGISTERED is a wrong project or URL: our configuration, not the token.
        return error(ErrorKind.AUTH)
    if status in (408, 504):
        return error(ErrorKind.TIMEOUT)
    return error(ErrorKind.UNAVAILABLE)  # 500, 503 and anything unexpected: worth retrying


def _transport_error(exc: firebase_exceptions.FirebaseError) -> PushError:
    cause = exc.cause
    if isinstance(cause, _NoAccessToken):
        return token_failure(cause.error)
    if isinstance(cause, google.auth.exceptions.GoogleAuthError):
        return token_failure(cause)
    if isinstance(cause, httpx.TimeoutException) or isinstance(exc, firebase_exceptions.DeadlineExceededError):
        return PushError(ErrorKind.TIMEOUT, "timeout", message=str(exc))
    return PushError(ErrorKind.CONNECTION, type(cause).__name__ if cause else "connection", message=str(exc))


def token_failure(exc: google.auth.exceptions.GoogleAuthError) -> PushError:
    """The batch-wide error when no access token can be had: AUTH when the grant is refused,
    UNAVAILABLE when the token endpoint is down or unreachable."""
    if isinstance(exc, google.auth.exceptions.RefreshError) and not exc.retryable:
        details = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        return PushError(ErrorKind.AUTH, str(details.get("error") or "invalid_grant"), message=str(exc))
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return PushError(ErrorKind.UNAVAILABLE, "token_endpoint_unavailable", message=str(exc))
    return PushError(ErrorKind.UNAVAILABLE, "token_endpoint_unreachable", message=str(exc))


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        document = json.loads(response.content)
    except ValueError:
        return {}
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else {}


def _fcm_error_code(response: httpx.Response) -> str | None:
    for detail in _error_body(response).get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE and detail.get("errorCode"):
            return str(detail["errorCode"])
    return None


def _google_status(response: httpx.Response) -> str | None:
    status = _error_body(response).get("status")
    return str(status) if status else None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _message_id(response: httpx.Response) -> str | None:
    try:
        name = json.loads(response.content).get("name")
    except (ValueError, AttributeError):
        return None
    return _id_of(name)


def _id_of(name: Any) -> str | None:
    """``projects/p/messages/0:123%abc`` -> ``0:123%abc``."""
    return name.rpartition("/messages/")[2] if isinstance(name, str) else None


# ---------------------------------------------------------------------------------------------
# HTTP v1 JSON -> firebase-admin objects, so that firebase-admin's encoder validates and writes them.

_Convert = Callable[[Any, str], Any]
_Fields = dict[str, tuple[str, _Convert]]
_DURATION = re.compile(r"^(\d+)(?:\.(\d{1,9}))?s$")


def _same(value: Any, path: str) -> Any:
    return value


def _lower(value: Any, path: str) -> Any:
    return value.lower() if isinstance(value, str) else value


def _duration(value: Any, path: str) -> float | int:
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{path} must be a duration such as 3600s")
    seconds, fraction = int(match.group(1)), match.group(2)
    return seconds + int(fraction) / 10 ** len(fraction) if fraction else seconds


def _millis(value: Any, path: str) -> float:
    return _duration(value, path) * 1000


def _object(cls: Callable[..., Any], fields: _Fields, extra: str | None = None) -> Callable[[Any, str], Any]:
    """A converter from a JSON object to ``cls(**kwargs)``; keys not in ``fields`` go to the
    ``extra`` keyword as a dict, or are refused."""

    def convert(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"{path} must be an object")
        kwargs: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for key, item in value.items():
            if key in fields:
                name, converter = fields[key]
                kwargs[name] = converter(item, f"{path}.{key}")
            elif extra is not None:
                custom[key] = item
            else:
                raise ValueError(f'unknown field "{key}" in {path}')
        if custom and extra is not None:
            kwargs[extra] = custom
        return cls(**kwargs)

    return convert


def _list_of(convert: _Convert) -> _Convert:
    def converted(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise ValueError(f"{path} must be a list")
        return [convert(item, f"{path}[{index}]") for index, item in enumerate(value)]

    return converted


def _named(*names: str) -> _Fields:
    return {name: (name, _same) for name in names}


def _light_settings(value: Any, path: str) -> messaging.LightSettings:
    if not isinstance(value, dict) or not isinstance(value.get("color"), dict):
        raise ValueError(f"{path} must be an object with a color")
    rgba = [
        value["color"].get(channel, 1.0 if channel == "alpha" else 0.0) for channel in ("red", "green", "blue", "alpha")
    ]
    color = "#" + "".join(f"{round(float(c) * 255):02X}" for c in rgba)
    return messaging.LightSettings(
        color,
        _millis(value.get("light_on_duration"), f"{path}.light_on_duration"),
        _millis(value.get("light_off_duration"), f"{path}.light_off_duration"),
    )


def _event_time(value: Any, path: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path} must be an RFC 3339 timestamp") from exc


def _priority(value: Any, path: str) -> Any:
    return value.upper().removeprefix("PRIORITY_").lower() if isinstance(value, str) else value


_ANDROID_NOTIFICATION = _object(
    messaging.AndroidNotification,
    {
        **_named(
            "title",
            "body",
            "icon",
            "color",
            "sound",
            "tag",
            "click_action",
            "body_loc_key",
            "body_loc_args",
            "title_loc_key",
            "title_loc_args",
            "channel_id",
            "image",
            "ticker",
            "sticky",
            "local_only",
            "default_vibrate_timings",
            "default_sound",
            "default_light_settings",
            "notification_count",
        ),
        "event_time": ("event_timestamp", _event_time),
        "notification_priority": ("priority", _priority),
        "vibrate_timings": ("vibrate_timings_millis", _list_of(_millis)),
        "light_settings": ("light_settings", _light_settings),
        "visibility": ("visibility", _lower),
        "proxy": ("proxy", _lower),
    },
)
_ANDROID = _object(
    messaging.AndroidConfig,
    {
        **_named(
            "collapse_key",
            "restricted_package_name",
            "data",
            "direct_boot_ok",
            "bandwidth_constrained_ok",
            "restricted_satellite_ok",
        ),
        "priority": ("priority", _lower),
        "ttl": ("ttl", _duration),
        "notification": ("notification", _ANDROID_NOTIFICATION),
        "fcm_options": ("fcm_options", _object(messaging.AndroidFCMOptions, _named("analytics_label"))),
    },
)
_APS_ALERT = _object(
    messaging.ApsAlert,
    {
        **_named("title", "subtitle", "body"),
        "loc-key": ("loc_key", _same),
        "loc-args": ("loc_args", _same),
        "title-loc-key": ("title_loc_key", _same),
        "title-loc-args": ("title_loc_args", _same),
        "action-loc-key": ("action_loc_key", _same),
        "launch-image": ("launch_image", _same),
    },
    extra="custom_data",
)


def _flag(value: Any, path: str) -> bool | None:
    return True if value == 1 or value is True else None  # the encoder writes 1 for True and omits the rest


_CRITICAL_SOUND = _object(
    messaging.CriticalSound, {"name": ("name", _same), "critical": ("critical", _flag), "volume": ("volume", _same)}
)


def _alert(value: Any, path: str) -> Any:
    return value if isinstance(value, str) else _APS_ALERT(value, path)


def _sound(value: Any, path: str) -> Any:
    return value if isinstance(value, str) else _CRITICAL_SOUND(value, path)


_APS = _object(
    messaging.Aps,
    {
        **_named("badge", "category"),
        "alert": ("alert", _alert),
        "sound": ("sound", _sound),
        "thread-id": ("thread_id", _same),
        "content-available": ("content_available", _flag),
        "mutable-content": ("mutable_content", _flag),
    },
    extra="custom_data",
)


def _apns_payload(value: Any, path: str) -> messaging.APNSPayload:
    if not isinstance(value, dict):
        raise ValueError(f"{path} must be an object")
    custom = {key: item for key, item in value.items() if key != "aps"}
    return messaging.APNSPayload(_APS(value.get("aps", {}), f"{path}.aps"), **custom)


_APNS = _object(
    messaging.APNSConfig,
    {
        **_named("headers", "live_activity_token"),
        "payload": ("payload", _apns_payload),
        "fcm_options": ("fcm_options", _object(messaging.APNSFCMOptions, _named("analytics_label", "image"))),
    },
)
_WEBPUSH_ACTION = _object(messaging.WebpushNotificationAction, _named("action", "title", "icon"))
_WEBPUSH = _object(
    messaging.WebpushConfig,
    {
        **_named("headers", "data"),
        "notification": (
            "notification",
            _object(
                messaging.WebpushNotification,
                {
                    **_named("title", "body", "icon", "badge", "data", "image", "renotify", "silent", "tag", "vibrate"),
                    "actions": ("actions", _list_of(_WEBPUSH_ACTION)),
                    "dir": ("direction", _same),
                    "lang": ("language", _same),
                    "requireInteraction": ("require_interaction", _same),
                    "timestamp": ("timestamp_millis", _same),
                },
                extra="custom_data",
            ),
        ),
        "fcm_options": ("fcm_options", _object(messaging.WebpushFCMOptions, _named("link"))),
    },
)
_MESSAGE_FIELDS: _Fields = {
    "data": ("data", _same),
    "notification": ("notification", _object(messaging.Notification, _named("title", "body", "image"))),
    "android": ("android", _ANDROID),
    "apns": ("apns", _APNS),
    "webpush": ("webpush", _WEBPUSH),
    "fcm_options": ("fcm_options", _object(messaging.FCMOptions, _named("analytics_label"))),
}
_MESSAGE = _object(messaging.Message, _MESSAGE_FIELDS)


def to_message(payload: Mapping[str, Any], token: str) -> messaging.Message:
    """Build the ``messaging.Message`` for ``payload`` (an HTTP v1 message without target) and
    ``token``. Raises ValueError for a field firebase-admin does not know; its encoder (``str()``
    of the result) checks the values."""
    message = _MESSAGE(dict(payload), "message")
    # Message(token=...) warns that ``token`` is deprecated in favour of ``fid`` (firebase-admin 7.7),
    # and the warning is raised in __init__ only. The HTTP v1 API documents ``token`` for
    # registration tokens, which is what we hold, so it is set after construction: the encoder
    # then writes ``"token"`` exactly as before the deprecation.
    message.token = token
    return message
