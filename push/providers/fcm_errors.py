"""What an FCM HTTP v1 answer, or the lack of one, means: a :class:`~push.providers.base.PushError`.

Contract: :func:`answer_error` maps an error answer of ``messages:send`` (status, headers, body)
to the error of its message; :func:`token_failure` maps a failed OAuth token refresh to the error
of every message of the batch; :func:`transport_error` maps a request that got no answer. Pure,
no I/O.

The vocabulary is FCM's (the ``ErrorCode`` enum of the HTTP v1 reference, read from the body's
``details[].errorCode`` with ``@type`` ``...fcm.v1.FcmError``), with the canonical Google
``status`` and the HTTP status as fall-backs, and the same outcomes firebase-admin's error classes
give (``UnregisteredError``, ``SenderIdMismatchError``, ``QuotaExceededError``,
``ThirdPartyAuthError``, ``InvalidArgumentError``):

==========================  ======  ===================================================
errorCode / status          kind    why
==========================  ======  ===================================================
UNREGISTERED                TOKEN_GONE      the app was uninstalled or the token expired
SENDER_ID_MISMATCH          TOKEN_MISMATCH  the token belongs to another sender
QUOTA_EXCEEDED, 429         THROTTLED       wait: Retry-After, else a minute for QUOTA_EXCEEDED
THIRD_PARTY_AUTH_ERROR,     AUTH            our credentials (or the APNs/web push ones
401, 403                                    uploaded to Firebase) were refused
INVALID_ARGUMENT, 400, 413  TOKEN_INVALID   when the message says the registration token is
                                            invalid; else PAYLOAD_REJECTED
404 without UNREGISTERED    AUTH            a wrong project or URL: configuration, not token
408, 504                    TIMEOUT
anything else (500, 503)    UNAVAILABLE     worth retrying
==========================  ======  ===================================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import google.auth.exceptions

from push.providers.base import ErrorKind, PushError

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
#: FCM asks for at least a minute before a message refused with QUOTA_EXCEEDED is sent again: the
#: project's quota is per minute. A Retry-After, when given, wins.
QUOTA_RETRY_SECONDS = 60.0
_INVALID_TOKEN = re.compile(r"registration token.*not a valid|invalid registration token", re.IGNORECASE)
_BY_CODE = {
    "UNREGISTERED": ErrorKind.TOKEN_GONE,
    "SENDER_ID_MISMATCH": ErrorKind.TOKEN_MISMATCH,
    "QUOTA_EXCEEDED": ErrorKind.THROTTLED,
    "THIRD_PARTY_AUTH_ERROR": ErrorKind.AUTH,
}
_BY_STATUS = {
    429: ErrorKind.THROTTLED,
    401: ErrorKind.AUTH,
    403: ErrorKind.AUTH,
    404: ErrorKind.AUTH,
    408: ErrorKind.TIMEOUT,
    504: ErrorKind.TIMEOUT,
}


def answer_error(status: int, headers: Mapping[str, str], body: bytes) -> PushError:
    """The error of a message whose ``messages:send`` answered ``status`` (not 2xx)."""
    error = error_body(body)
    code = fcm_error_code(error)
    reason = code or str(error.get("status") or "") or f"HTTP {status}"
    message = str(error.get("message") or "") or body[:200].decode(errors="replace")
    kind = _BY_CODE.get(code or "") or _BY_STATUS.get(status)
    if kind is None and (code == "INVALID_ARGUMENT" or status in (400, 413)):
        kind = ErrorKind.TOKEN_INVALID if _INVALID_TOKEN.search(message) else ErrorKind.PAYLOAD_REJECTED
    wait = retry_after(headers.get("retry-after"))
    if wait is None and code == "QUOTA_EXCEEDED":
        wait = QUOTA_RETRY_SECONDS
    return PushError(kind or ErrorKind.UNAVAILABLE, reason, status=status, message=message, retry_after=wait)


def error_body(body: bytes) -> dict[str, Any]:
    """The ``error`` object of Google's error body, or {} when there is none."""
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else {}


def fcm_error_code(error: Mapping[str, Any]) -> str | None:
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE and detail.get("errorCode"):
            return str(detail["errorCode"])
    return None


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After value (delta-seconds or an HTTP date), None when absent or bad."""
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


def transport_error(reason: str, message: str, *, timed_out: bool = False) -> PushError:
    """A request that got no answer: TIMEOUT, or CONNECTION (lost, refused, GOAWAY)."""
    if timed_out:
        return PushError(ErrorKind.TIMEOUT, "timeout", message=message)
    return PushError(ErrorKind.CONNECTION, reason, message=message)


def token_failure(exc: google.auth.exceptions.GoogleAuthError) -> PushError:
    """The batch-wide error when no access token can be had: AUTH when the grant is refused,
    UNAVAILABLE when the token endpoint is down or unreachable."""
    if isinstance(exc, google.auth.exceptions.RefreshError) and not exc.retryable:
        details = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        return PushError(ErrorKind.AUTH, str(details.get("error") or "invalid_grant"), message=str(exc))
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return PushError(ErrorKind.UNAVAILABLE, "token_endpoint_unavailable", message=str(exc))
    return PushError(ErrorKind.UNAVAILABLE, "token_endpoint_unreachable", message=str(exc))
