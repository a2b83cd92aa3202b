"""The peer: requests in, replies out, no I/O (OAuth token grants and ``messages:send``)."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from push.peers.fcm.common import (
    BAD_REQUEST_TYPE,
    FCM_ERROR_TYPE,
    GOOGLE_TOKEN_URL,
    JWT_BEARER_GRANT,
    MESSAGING_SCOPES,
    PLATFORM,
    TOKEN_LIFETIME,
    TOKEN_PREFIXES,
    AccountLookup,
    Injection,
    Invalid,
    Reply,
    logger,
)
from push.peers.fcm.messages import type_error, validate_message
from push.peers.inbox import Inbox


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
        except Invalid as exc:
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
            raise Invalid("Invalid JSON payload received.", "")
        unknown = sorted(set(document) - {"message", "validate_only"})
        if unknown:
            raise Invalid(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
        if not isinstance(document.get("validate_only", False), bool):
            raise type_error("validate_only", "TYPE_BOOL", document["validate_only"])
        if "message" not in document:
            raise Invalid("Request contains an invalid argument.", "message")
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
