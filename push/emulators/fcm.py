"""A local FCM HTTP v1 peer: Google's OAuth token endpoint and ``messages:send``, over TLS.

It speaks what the real clients speak, so firebase-admin, google-auth and httpx run unchanged
against it: HTTP/2 (ALPN ``h2``, or the prior-knowledge preface) for sends and HTTP/1.1 for the
token endpoint (google-auth uses ``requests``) on the same port; either protocol serves every path.

``POST /token``
    The service-account flow: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and an
    RS256 ``assertion`` whose signature is checked against the account's public key (from the
    ``accounts`` callable), with ``iss`` = client email, ``aud`` = this URL or Google's
    ``https://oauth2.googleapis.com/token``, a short-lived ``iat``/``exp`` and a messaging scope
    (``firebase.messaging`` or ``cloud-platform``). Answers ``{"access_token", "expires_in": 3600,
    "token_type": "Bearer"}``, or Google's ``400 {"error": "invalid_grant", ...}``.

``POST /v1/projects/{project}/messages:send``
    Needs ``Authorization: Bearer <token issued here>`` for an account of that project (the
    project is read from ``...@{project}.iam.gserviceaccount.com``), else 401 UNAUTHENTICATED or
    403 PERMISSION_DENIED. Validates the message like FCM (exactly one of token/topic/condition/fid,
    string data values, the android/apns/webpush/notification shapes, at most 4096 bytes) and
    answers ``{"name": "projects/{project}/messages/{id}"}`` or Google's error body with the
    ``FcmError`` detail. ``validate_only`` answers ``.../messages/fake_message_id``.

Injected answers, by registration-token prefix (checked in this order; see ``TOKEN_PREFIXES``):

=====================  ======  ======================  ====================================
prefix                 status  errorCode               notes
=====================  ======  ======================  ====================================
``quota-once-``        429     QUOTA_EXCEEDED          fail the first request for that
``unavailable-once-``  503     UNAVAILABLE             exact token only, then succeed
``internal-once-``     500     INTERNAL                (Retry-After as below)
``unregistered-``      404     UNREGISTERED
``invalid-``           400     INVALID_ARGUMENT        "The registration token is not a
                                                       valid FCM registration token"
``mismatch-``          403     SENDER_ID_MISMATCH
``quota-``             429     QUOTA_EXCEEDED          with ``Retry-After``
``unavailable-``       503     UNAVAILABLE             with ``Retry-After``
``internal-``          500     INTERNAL
``thirdparty-``        401     THIRD_PARTY_AUTH_ERROR
``slow-``              200                             answers after ``slow_seconds``
=====================  ======  ======================  ====================================

Any other token is delivered (200).

:meth:`FcmEmulator.fail_token_endpoint` makes ``/token`` answer an error status (5xx looks like an
outage, 4xx like a refused grant); :meth:`FcmEmulator.forget_tokens` acts like a restart.

Every ``messages:send`` request is recorded in the :class:`~push.emulators.inbox.Inbox` under
``"android"``: ``token``, ``payload`` (the message object as received), ``status``, ``reason``
(errorCode or status, None on success), ``project``, ``message_id``, ``validate_only``,
``headers``, ``received_at``. ``GET /_emulator/inbox`` returns them (``?limit=N``: the last N) and
``DELETE /_emulator/inbox`` clears them, for callers in another process.

Run it in-process with ``FcmEmulator(...).start()`` / ``.stop()`` (a thread with its own loop), on
a running loop with ``await open()`` / ``await close()``, or as a process::

    python -m push.emulators.fcm --port 8444 --tls-dir instance/tls \\
        --new-service-account instance/fcm-service-account.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import itertools
import json
import logging
import re
import secrets
import signal
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import h11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from push.emulators.inbox import Inbox
from push.emulators.tls import local_tls

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MESSAGING_SCOPES = frozenset(
    {"https://www.googleapis.com/auth/firebase.messaging", "https://www.googleapis.com/auth/cloud-platform"}
)
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
MAX_PAYLOAD_BYTES = 4096
TOKEN_LIFETIME = 3600
MAX_CONCURRENT_STREAMS = 100  # what Google's front ends announce; httpcore never uses more anyway
INVALID_TOKEN_MESSAGE = "The registration token is not a valid FCM registration token"
PLATFORM = "android"

logger = logging.getLogger(__name__)

AccountLookup = Callable[[str], rsa.RSAPublicKey | None]
"""client_email -> the account's public key, or None for an unknown account."""


@dataclass(frozen=True)
class Injection:
    """An answer forced by a token prefix."""

    status: int
    code: str  # google.rpc status name
    error_code: str | None  # FcmError errorCode
    message: str
    once: bool = False  # fail the first request for a token, then succeed
    retry_after: bool = False
    slow: bool = False


_QUOTA = Injection(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for message target.", retry_after=True)
_UNAVAILABLE = Injection(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", retry_after=True)
_INTERNAL = Injection(500, "INTERNAL", "INTERNAL", "Internal error encountered.")

TOKEN_PREFIXES: dict[str, Injection] = {
    "quota-once-": dataclasses.replace(_QUOTA, once=True),
    "unavailable-once-": dataclasses.replace(_UNAVAILABLE, once=True),
    "internal-once-": dataclasses.replace(_INTERNAL, once=True),
    "unregistered-": Injection(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "invalid-": Injection(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", INVALID_TOKEN_MESSAGE),
    "mismatch-": Injection(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "quota-": _QUOTA,
    "unavailable-": _UNAVAILABLE,
    "internal-": _INTERNAL,
    "thirdparty-": Injection(
        401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service"
    ),
    "slow-": Injection(200, "OK", None, "", slow=True),
}


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0  # seconds to wait before answering (slow- tokens)


class _Invalid(Exception):
    """An INVALID_ARGUMENT answer: message plus the offending field."""

    def __init__(self, message: str, field_path: str = "message", with_fcm_error: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.field_path = field_path
        self.with_fcm_error = with_fcm_error


# ---------------------------------------------------------------------------------------------
# Message validation: the shapes of the HTTP v1 Message resource, as FCM checks them.

_S, _B, _N, _I = "string", "bool", "number", "integer"
_SMAP, _SLIST, _DUR, _OBJ = "map<string,string>", "list<string>", "duration", "object"

_NOTIFICATION: dict[str, Any] = {"title": _S, "body": _S, "image": _S}
_COLOR = {"red": _N, "green": _N, "blue": _N, "alpha": _N}
_ANDROID_NOTIFICATION: dict[str, Any] = {
    **{name: _S for name in ("title", "body", "icon", "color", "sound", "tag", "click_action", "body_loc_key")},
    **{name: _S for name in ("title_loc_key", "channel_id", "ticker", "image", "event_time")},
    "body_loc_args": _SLIST,
    "title_loc_args": _SLIST,
    "sticky": _B,
    "local_only": _B,
    "default_sound": _B,
    "default_vibrate_timings": _B,
    "default_light_settings": _B,
    "bypass_proxy_notification": _B,
    "notification_count": _I,
    "vibrate_timings": [_DUR],
    "light_settings": {"color": _COLOR, "light_on_duration": _DUR, "light_off_duration": _DUR},
    "notification_priority": (
        "PRIORITY_UNSPECIFIED",
        "PRIORITY_MIN",
        "PRIORITY_LOW",
        "PRIORITY_DEFAULT",
        "PRIORITY_HIGH",
        "PRIORITY_MAX",
    ),
    "visibility": ("VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"),
    "proxy": ("PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"),
}
_ANDROID: dict[str, Any] = {
    "collapse_key": _S,
    "priority": ("NORMAL", "HIGH"),
    "ttl": _DUR,
    "restricted_package_name": _S,
    "data": _SMAP,
    "notification": _ANDROID_NOTIFICATION,
    "fcm_options": {"analytics_label": _S},
    "direct_boot_ok": _B,
    "bandwidth_constrained_ok": _B,
    "restricted_satellite_ok": _B,
}
_WEBPUSH: dict[str, Any] = {
    "headers": _SMAP,
    "data": _SMAP,
    "notification": _OBJ,
    "fcm_options": {"link": _S, "analytics_label": _S},
}
_APNS: dict[str, Any] = {
    "headers": _SMAP,
    "payload": _OBJ,
    "fcm_options": {"analytics_label": _S, "image": _S},
    "live_activity_token": _S,
}
_MESSAGE: dict[str, Any] = {
    "name": _S,
    "data": _SMAP,
    "notification": _NOTIFICATION,
    "android": _ANDROID,
    "webpush": _WEBPUSH,
    "apns": _APNS,
    "fcm_options": {"analytics_label": _S},
    "token": _S,
    "topic": _S,
    "condition": _S,
    "fid": _S,
}
_TARGETS = ("token", "topic", "condition", "fid")
_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")
_RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
_ANALYTICS_LABEL = re.compile(r"^[a-zA-Z0-9-_.~%]{1,50}$")


def _type_error(path: str, kind: str, value: Any) -> _Invalid:
    return _Invalid(f"Invalid value at '{path}' ({kind}), {json.dumps(value)}", path)


def _check(value: Any, spec: Any, path: str) -> None:
    """Check ``value`` against a shape: a dict of fields, a tuple of enum names, a one-item list
    (repeated field) or a scalar kind name."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise _type_error(path, "TYPE_MESSAGE", value)
        for key, item in value.items():
            if key not in spec:
                raise _Invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field.")
            _check(item, spec[key], f"{path}.{key}")
    elif isinstance(spec, tuple):
        # Google's JSON parser takes enum names in either case (firebase-admin sends "high").
        if not isinstance(value, str) or value.upper() not in spec:
            raise _type_error(path, "TYPE_ENUM", value)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise _type_error(path, "TYPE_LIST", value)
        for index, item in enumerate(value):
            _check(item, spec[0], f"{path}[{index}]")
    else:
        _check_scalar(value, spec, path)


def _check_scalar(value: Any, kind: str, path: str) -> None:
    ok = {
        _S: isinstance(value, str),
        _B: isinstance(value, bool),
        _N: isinstance(value, int | float) and not isinstance(value, bool),
        _I: (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit()),
        _OBJ: isinstance(value, dict),
        _DUR: isinstance(value, str) and bool(_DURATION.match(value)),
        _SLIST: isinstance(value, list) and all(isinstance(v, str) for v in value),
        _SMAP: isinstance(value, dict),
    }[kind]
    if not ok:
        raise _type_error(path, kind, value)
    if kind == _SMAP:
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(item, str):
                raise _type_error(f"{path}[{index}].value", "TYPE_STRING", item)
            if path.endswith(".data") and (key in _RESERVED_DATA_KEYS or key.startswith(("google.", "gcm."))):
                raise _Invalid(f"Invalid data payload key: {key}", f"{path}[{index}].key")


def validate_message(message: Any) -> str | None:
    """Check a ``message`` object like FCM; return its target token (``token`` or ``fid``), or None
    for topic/condition targets. Raises :class:`_Invalid`."""
    _check(message, _MESSAGE, "message")
    targets = [name for name in _TARGETS if name in message]
    if not targets:
        raise _Invalid("Recipient of the message is not set.")
    if len(targets) > 1:
        raise _Invalid(
            f"Invalid value at 'message' (oneof), oneof field 'target' is already set. Cannot set '{targets[1]}'"
        )
    for path, label in (
        (("fcm_options",), "message.fcm_options"),
        (("android", "fcm_options"), "message.android.fcm_options"),
        (("apns", "fcm_options"), "message.apns.fcm_options"),
    ):
        options: Any = message
        for key in path:
            options = options.get(key, {}) if isinstance(options, dict) else {}
        label_value = options.get("analytics_label")
        if label_value is not None and not _ANALYTICS_LABEL.match(label_value):
            raise _Invalid("Invalid analytics_label", f"{label}.analytics_label")
    aps = message.get("apns", {}).get("payload", {}).get("aps")
    if aps is not None and not isinstance(aps, dict):
        raise _type_error("message.apns.payload.aps", "TYPE_MESSAGE", aps)
    link = message.get("webpush", {}).get("fcm_options", {}).get("link")
    if link is not None and not link.startswith("https://"):
        raise _Invalid("Invalid link: must be an HTTPS URL", "message.webpush.fcm_options.link")
    token = message.get("token", message.get("fid"))
    if token is not None and not token:
        raise _Invalid(INVALID_TOKEN_MESSAGE, "message.token", with_fcm_error=True)
    if payload_size(message) > MAX_PAYLOAD_BYTES:
        raise _Invalid("Message is too big", "message", with_fcm_error=True)
    return token


def payload_size(message: Mapping[str, Any]) -> int:
    """The size FCM's 4096-byte limit is checked against here: the message without its target,
    as compact UTF-8 JSON."""
    payload = {k: v for k, v in message.items() if k not in _TARGETS}
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


# ---------------------------------------------------------------------------------------------
# The peer: requests in, replies out, no I/O.


def _json_reply(status: int, document: Mapping[str, Any], headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, json.dumps(document).encode(), headers or [])


def google_error(
    status: int, code: str, message: str, error_code: str | None = None, field_path: str | None = None
) -> dict[str, Any]:
    """Google's error body: ``{"error": {"code", "message", "status", "details"}}``."""
    details: list[dict[str, Any]] = []
    if error_code:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": error_code})
    if field_path:
        details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": [{"field": field_path, "description": message}]})
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if details:
        error["details"] = details
    return {"error": error}


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


_SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_PROJECT_OF_EMAIL = re.compile(r"@([a-z0-9-]+)\.iam\.gserviceaccount\.com$")
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class FcmPeer:
    """FCM's behaviour, independent of the transport. Not thread-safe: one event loop calls it."""

    def __init__(
        self, accounts: AccountLookup, inbox: Inbox, *, slow_seconds: float = 2.0, retry_after: int = 1
    ) -> None:
        self.accounts = accounts
        self.inbox = inbox
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.token_failure: int | None = None
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (client email, expiry)
        self._failed_once: set[str] = set()
        self._ids = itertools.count(int(time.time() * 1000) * 1000)
        self._nonce = secrets.token_hex(8)

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one request (``headers`` lower-case; HTTP/2 pseudo-headers included)."""
        try:
            return self._route(method, path, headers, body)
        except Exception:  # a bug here must not take the connection down with it
            logger.exception("FCM emulator failed on %s %s", method, path)
            return _json_reply(500, google_error(500, "INTERNAL", "Internal error encountered."))

    def _route(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        route, _, query = path.partition("?")
        if route == "/token":
            return self._token(headers, body) if method == "POST" else self._not_allowed()
        match = _SEND_PATH.match(route)
        if match:
            return self._send(match.group(1), headers, body) if method == "POST" else self._not_allowed()
        if route == "/_emulator/inbox":
            return self._inbox(method, query)
        return _json_reply(404, google_error(404, "NOT_FOUND", f"The requested URL {route} was not found."))

    def forget_tokens(self) -> None:
        """Drop every issued access token, as a restarted Google would refuse old ones."""
        self._tokens.clear()

    def reset(self) -> None:
        """Back to a fresh start: inbox empty, token endpoint working, no token failed once yet."""
        self.inbox.clear()
        self.token_failure = None
        self._failed_once.clear()

    @staticmethod
    def _not_allowed() -> Reply:
        return _json_reply(405, google_error(405, "METHOD_NOT_ALLOWED", "Method not allowed."))

    # -- OAuth -------------------------------------------------------------------------------

    def _token(self, headers: Mapping[str, str], body: bytes) -> Reply:
        if self.token_failure is not None:
            status = self.token_failure
            if status >= 500:
                return _json_reply(status, {"error": "internal_failure", "error_description": "Backend Error"})
            return _json_reply(
                status, {"error": "invalid_grant", "error_description": "Invalid grant: account not found"}
            )
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != JWT_BEARER_GRANT:
            return _json_reply(
                400, {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant_type}"}
            )
        own_url = f"https://{headers.get(':authority') or headers.get('host', '')}/token"
        try:
            email, scopes = self._verify_assertion(form.get("assertion", [""])[0], {GOOGLE_TOKEN_URL, own_url})
        except _GrantError as exc:
            return _json_reply(400, {"error": exc.error, "error_description": exc.description})
        if not scopes & MESSAGING_SCOPES:
            return _json_reply(
                400,
                {"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."},
            )
        token = "ya29.emu." + secrets.token_urlsafe(32)
        self._tokens[token] = (email, time.monotonic() + TOKEN_LIFETIME)
        return _json_reply(200, {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"})

    def _verify_assertion(self, assertion: str, audiences: set[str]) -> tuple[str, set[str]]:
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url(header_b64))
            claims = json.loads(_b64url(claims_b64))
            signature = _b64url(signature_b64)
        except (ValueError, binascii.Error) as exc:
            raise _GrantError("invalid_grant", "Invalid JWT: malformed assertion") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            raise _GrantError("invalid_grant", "Invalid JWT Signature.")
        email = claims.get("iss")
        key = self.accounts(email) if isinstance(email, str) else None
        if key is None:
            raise _GrantError("invalid_grant", "Invalid grant: account not found")
        try:
            key.verify(signature, f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise _GrantError("invalid_grant", "Invalid JWT Signature.") from exc
        if claims.get("aud") not in audiences:
            raise _GrantError(
                "invalid_grant", f"Invalid JWT: Failed audience check. The right audience is {GOOGLE_TOKEN_URL}"
            )
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(iat, int | float)
            or not isinstance(exp, int | float)
            or exp - iat > TOKEN_LIFETIME
            or iat > now + 300
            or exp < now - 300
        ):
            raise _GrantError(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim.",
            )
        scope = claims.get("scope")
        return str(email), set(scope.split()) if isinstance(scope, str) else set()

    # -- messages:send -----------------------------------------------------------------------

    def _send(self, project: str, headers: Mapping[str, str], body: bytes) -> Reply:
        record: dict[str, Any] = {
            "token": None,
            "payload": None,
            "project": project,
            "validate_only": False,
            "message_id": None,
            "headers": {k: v for k, v in headers.items() if not k.startswith(":")},
        }
        reply = self._send_reply(project, headers, body, record)
        record["status"] = reply.status
        if reply.status != 200:
            error = json.loads(reply.body)["error"]
            details = [d for d in error.get("details", []) if d.get("@type") == FCM_ERROR_TYPE]
            record["reason"] = details[0]["errorCode"] if details else error["status"]
        else:
            record["reason"] = None
        self.inbox.add(PLATFORM, record)
        return reply

    def _send_reply(self, project: str, headers: Mapping[str, str], body: bytes, record: dict[str, Any]) -> Reply:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        message = document.get("message") if isinstance(document, dict) else None
        if isinstance(message, dict):
            record["payload"] = message
            record["token"] = message.get("token", message.get("fid"))
        refused = self._authorize(project, headers.get("authorization", ""))
        if refused is not None:
            return refused
        try:
            token = self._validate(document)
        except _Invalid as exc:
            error_code = "INVALID_ARGUMENT" if exc.with_fcm_error else None
            return _json_reply(400, google_error(400, "INVALID_ARGUMENT", exc.message, error_code, exc.field_path))
        assert isinstance(document, dict)  # _validate checked it
        record["validate_only"] = validate_only = bool(document.get("validate_only", False))
        injection = _injection_for(token) if token else None
        if token and injection is not None and injection.once:
            if token in self._failed_once:
                injection = None
            else:
                self._failed_once.add(token)
        if injection is not None and not injection.slow:
            extra = [("retry-after", str(self.retry_after))] if injection.retry_after else []
            target = "message.token" if injection.error_code == "INVALID_ARGUMENT" else None
            error = google_error(injection.status, injection.code, injection.message, injection.error_code, target)
            return _json_reply(injection.status, error, extra)
        message_id = "fake_message_id" if validate_only else f"0:{next(self._ids)}%{self._nonce}"
        record["message_id"] = message_id
        reply = _json_reply(200, {"name": f"projects/{project}/messages/{message_id}"})
        if injection is not None:  # slow-
            reply.delay = self.slow_seconds
        return reply

    def _authorize(self, project: str, authorization: str) -> Reply | None:
        """None when the bearer token was issued here, is current, and its account owns ``project``."""
        scheme, _, token = authorization.partition(" ")
        issued = self._tokens.get(token) if scheme == "Bearer" else None
        if issued is None or issued[1] < time.monotonic():
            return _json_reply(401, google_error(401, "UNAUTHENTICATED", _UNAUTHENTICATED))
        owner = _PROJECT_OF_EMAIL.search(issued[0])
        if owner and owner.group(1) != project:
            message = (
                f"Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist)."
            )
            return _json_reply(403, google_error(403, "PERMISSION_DENIED", message))
        return None

    @staticmethod
    def _validate(document: Any) -> str | None:
        if not isinstance(document, dict):
            raise _Invalid("Invalid JSON payload received.", "")
        unknown = sorted(set(document) - {"message", "validate_only"})
        if unknown:
            raise _Invalid(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
        if not isinstance(document.get("validate_only", False), bool):
            raise _type_error("validate_only", "TYPE_BOOL", document["validate_only"])
        if "message" not in document:
            raise _Invalid("Request contains an invalid argument.", "message")
        return validate_message(document["message"])

    def _inbox(self, method: str, query: str) -> Reply:
        if method == "DELETE":
            self.inbox.clear()
            return _json_reply(200, {"count": 0})
        if method != "GET":
            return self._not_allowed()
        items = self.inbox.items(PLATFORM)
        limit = urllib.parse.parse_qs(query).get("limit", [""])[0]
        if limit.isdigit():
            items = items[len(items) - int(limit) :] if int(limit) else []
        return _json_reply(200, {"count": self.inbox.count(PLATFORM), "items": items})


class _GrantError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _injection_for(token: str) -> Injection | None:
    for prefix, injection in TOKEN_PREFIXES.items():
        if token.startswith(prefix):
            return injection
    return None


# ---------------------------------------------------------------------------------------------
# Transports: one asyncio protocol per connection, HTTP/2 (h2) or HTTP/1.1 (h11) by ALPN/preface.

_H2_PREFACE = b"PRI * HTTP/2.0"


class _Connection(asyncio.Protocol):
    def __init__(self, server: FcmEmulator) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._impl: _Http2 | _Http1 | None = None
        self._early = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn == "h2":
            self._impl = _Http2(self._server.peer, transport)
        elif alpn == "http/1.1":
            self._impl = _Http1(self._server.peer, transport)

    def data_received(self, data: bytes) -> None:
        if self._impl is None:  # no ALPN: decide by the first bytes
            self._early += data
            if len(self._early) < len(_H2_PREFACE) and _H2_PREFACE.startswith(self._early):
                return
            assert self._transport is not None
            is_h2 = self._early.startswith(_H2_PREFACE)
            self._impl = (
                _Http2(self._server.peer, self._transport) if is_h2 else _Http1(self._server.peer, self._transport)
            )
            data, self._early = self._early, b""
        self._impl.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server.connections.discard(self._transport)
        if self._impl is not None:
            self._impl.connection_lost()


class _Http2:
    def __init__(self, peer: FcmPeer, transport: asyncio.Transport) -> None:
        self._peer = peer
        self._transport = transport
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self._requests: dict[int, tuple[dict[str, str], bytearray]] = {}
        self._outgoing: dict[int, memoryview] = {}  # response bodies waiting for flow-control window
        self._timers: dict[int, asyncio.TimerHandle] = {}
        # MAX_CONCURRENT_STREAMS goes in the very first SETTINGS frame (LOCAL-PEERS, "Two more facts").
        self._conn.update_settings(
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
            }
        )
        self._conn.initiate_connection()
        self._conn.increment_flow_control_window(1 << 24)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()
            self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = cast(list[tuple[str, str]], event.headers or [])  # str: header_encoding is set
                self._requests[event.stream_id] = (dict(headers), bytearray())
            elif isinstance(event, h2.events.DataReceived):
                stream_id = event.stream_id
                if stream_id in self._requests:
                    self._requests[stream_id][1].extend(event.data or b"")
                self._conn.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._dispatch(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._forget(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated):
                for stream_id in list(self._outgoing):
                    self._send_body(stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._flush()
                self._transport.close()
                return
        self._flush()

    def _dispatch(self, stream_id: int) -> None:
        request = self._requests.pop(stream_id, None)
        if request is None:
            return
        headers, body = request
        reply = self._peer.handle(headers.get(":method", ""), headers.get(":path", ""), headers, bytes(body))
        if reply.delay:
            loop = asyncio.get_running_loop()
            self._timers[stream_id] = loop.call_later(reply.delay, self._respond_later, stream_id, reply)
        else:
            self._respond(stream_id, reply)

    def _respond_later(self, stream_id: int, reply: Reply) -> None:
        self._timers.pop(stream_id, None)
        self._respond(stream_id, reply)
        self._flush()

    def _respond(self, stream_id: int, reply: Reply) -> None:
        headers = [
            (":status", str(reply.status)),
            ("content-type", "application/json; charset=UTF-8"),
            ("content-length", str(len(reply.body))),
            *reply.headers,
        ]
        try:
            self._conn.send_headers(stream_id, headers)
        except h2.exceptions.H2Error:  # the client reset or the connection closed meanwhile
            return
        self._outgoing[stream_id] = memoryview(reply.body)
        self._send_body(stream_id)

    def _send_body(self, stream_id: int) -> None:
        data = self._outgoing[stream_id]
        try:
            while data:
                size = min(
                    len(data), self._conn.local_flow_control_window(stream_id), self._conn.max_outbound_frame_size
                )
                if size <= 0:
                    self._outgoing[stream_id] = data
                    return
                self._conn.send_data(stream_id, data[:size].tobytes(), end_stream=size == len(data))
                data = data[size:]
        except h2.exceptions.H2Error:
            pass
        self._outgoing.pop(stream_id, None)

    def _forget(self, stream_id: int) -> None:
        self._requests.pop(stream_id, None)
        self._outgoing.pop(stream_id, None)
        timer = self._timers.pop(stream_id, None)
        if timer is not None:
            timer.cancel()

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def connection_lost(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class _Http1:
    def __init__(self, peer: FcmPeer, transport: asyncio.Transport) -> None:
        self._peer = peer
        self._transport = transport
        self._conn = h11.Connection(h11.SERVER)
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        self._conn.receive_data(data)
        self._process()

    def _process(self) -> None:
        while not self._busy:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError:
                self._transport.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request, self._body = event, bytearray()
            elif isinstance(event, h11.Data):
                self._body.extend(event.data)
            elif isinstance(event, h11.EndOfMessage) and self._request is not None:
                self._busy = True
                request = self._request
                headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers}
                reply = self._peer.handle(
                    request.method.decode(), request.target.decode("latin-1"), headers, bytes(self._body)
                )
                if reply.delay:
                    self._timer = asyncio.get_running_loop().call_later(reply.delay, self._respond, reply)
                else:
                    self._respond(reply)
            elif isinstance(event, h11.ConnectionClosed):
                self._transport.close()
                return

    def _respond(self, reply: Reply) -> None:
        self._timer = None
        if self._transport.is_closing():
            return
        headers = [
            ("content-type", "application/json; charset=UTF-8"),
            ("content-length", str(len(reply.body))),
            *reply.headers,
        ]
        out = self._conn.send(h11.Response(status_code=reply.status, headers=headers))
        out = (out or b"") + (self._conn.send(h11.Data(data=reply.body)) or b"")
        out += self._conn.send(h11.EndOfMessage()) or b""
        self._transport.write(out)
        if self._conn.our_state is h11.MUST_CLOSE or self._conn.their_state is not h11.DONE:
            self._transport.close()
            return
        self._conn.start_next_cycle()
        self._busy = False
        self._process()

    def connection_lost(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


# ---------------------------------------------------------------------------------------------
# The server.


class FcmEmulator:
    """The FCM peer on a TCP port, with TLS when ``ssl_context`` is given (what clients need).

    ``port=0`` picks a free port; :attr:`base_url` and :attr:`token_url` tell where it listens
    once open. ``inbox`` defaults to a new one.
    """

    def __init__(
        self,
        accounts: AccountLookup,
        *,
        inbox: Inbox | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        slow_seconds: float = 2.0,
        retry_after: int = 1,
    ) -> None:
        self.inbox = inbox if inbox is not None else Inbox()
        self.peer = FcmPeer(accounts, self.inbox, slow_seconds=slow_seconds, retry_after=retry_after)
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.connections: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def fail_token_endpoint(self, status: int | None) -> None:
        """Make ``/token`` answer ``status`` (None restores normal service)."""
        self._call(setattr, self.peer, "token_failure", status)

    def forget_tokens(self) -> None:
        """Refuse every access token issued so far (as after a restart)."""
        self._call(self.peer.forget_tokens)

    def reset(self) -> None:
        """Empty the inbox, restore the token endpoint and forget which tokens failed once."""
        self._call(self.peer.reset)

    def _call(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function`` on the emulator's loop (the peer is single-threaded)."""
        loop = self._loop
        if loop is None or not loop.is_running() or self._thread is None or threading.current_thread() is self._thread:
            function(*args)
            return
        done = threading.Event()

        def run() -> None:
            try:
                function(*args)
            finally:
                done.set()

        loop.call_soon_threadsafe(run)
        done.wait(5)

    # -- on a running loop --------------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, ssl=self.ssl_context, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop = loop

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for transport in list(self.connections):
            transport.close()
        await asyncio.sleep(0.05)  # let TLS close_notify go out
        for transport in list(self.connections):
            transport.abort()
        await self._server.wait_closed()
        self._server = None

    # -- on a thread of its own ---------------------------------------------------------------

    def start(self) -> FcmEmulator:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.open())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.close())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"fcm-emulator-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FcmEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# Accounts.


def accounts_from(service_accounts: Iterable[Mapping[str, Any]]) -> AccountLookup:
    """An account lookup over service-account JSON objects (their private keys' public halves)."""
    keys: dict[str, rsa.RSAPublicKey] = {}
    for account in service_accounts:
        private_key = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError(f"{account.get('client_email')}: the private key is not RSA")
        keys[account["client_email"]] = private_key.public_key()
    return keys.get


def new_service_account(project_id: str, token_uri: str) -> dict[str, Any]:
    """A fresh service-account JSON object (2048-bit RSA key) whose token_uri is ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }


# ---------------------------------------------------------------------------------------------
# python -m push.emulators.fcm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m push.emulators.fcm", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8444, help="0 picks a free port (printed on start)")
    parser.add_argument("--tls-dir", type=Path, help="folder of the local CA and certificate (made when missing)")
    parser.add_argument("--no-tls", action="store_true", help="plain HTTP (HTTP/1.1, or HTTP/2 prior knowledge)")
    parser.add_argument("--service-account", type=Path, action="append", default=[], help="accept this account")
    parser.add_argument("--new-service-account", type=Path, help="write a new account pointing here, and accept it")
    parser.add_argument("--project", default="demo-project", help="project id of --new-service-account")
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="delay of slow- tokens")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds of quota-/unavailable-")
    parser.add_argument("--token-failure", type=int, help="make /token answer this HTTP status")
    parser.add_argument("--inbox-limit", type=int, default=100_000, help="records kept (oldest dropped first)")
    args = parser.parse_args(argv)
    if not args.no_tls and args.tls_dir is None:
        parser.error("--tls-dir is required unless --no-tls")
    accounts = [json.loads(path.read_text()) for path in args.service_account]
    lookups = [accounts_from(accounts)]
    context = None if args.no_tls else local_tls(args.tls_dir).server_context()
    emulator = FcmEmulator(
        lambda email: next((key for lookup in lookups if (key := lookup(email)) is not None), None),
        inbox=Inbox(limit=args.inbox_limit),
        host=args.host,
        port=args.port,
        ssl_context=context,
        slow_seconds=args.slow_seconds,
        retry_after=args.retry_after,
    )
    emulator.peer.token_failure = args.token_failure

    async def serve() -> None:
        await emulator.open()
        if args.new_service_account is not None:
            account = new_service_account(args.project, emulator.token_url)
            args.new_service_account.write_text(json.dumps(account, indent=2))
            args.new_service_account.chmod(0o600)
            lookups.append(accounts_from([account]))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        ca = f" (CA {args.tls_dir / 'ca.pem'})" if context is not None else ""
        print(f"FCM emulator listening on {emulator.base_url}{ca}; token_uri {emulator.token_url}", flush=True)
        await stop.wait()
        await emulator.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
