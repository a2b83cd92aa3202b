"""What APNs answers mean to pushgate: the one table from an APNs status and reason to an ErrorKind.

Contract: pure functions, no I/O. :func:`error_for` maps an error answer (HTTP status, the
``reason`` of its JSON body, the ``timestamp`` of a 410) to a
:class:`~push.providers.base.PushError` (docs/protocols.md §5.2); :func:`connection_error` maps
a request that got no answer (connection attempts exhausted, connection lost with the request in
flight, any other transport failure) to one of kind ``ErrorKind.CONNECTION``. Requests the
provider refuses before sending (bad token, header or payload) are reported by
:mod:`push.providers.apns` itself.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aioapns.exceptions import MaxAttemptsExceeded

from push.providers.apns_connection import InFlightLost
from push.providers.base import ErrorKind, PushError

TOKEN_INVALID_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "MissingDeviceToken"})
AUTH_REASONS = frozenset({"BadTopic", "MissingTopic", "TopicDisallowed", "BadCertificate", "BadCertificateEnvironment"})


def error_for(status: int, reason: str, timestamp: int | None = None) -> PushError:
    """What an APNs error answer means (docs/protocols.md §5.2)."""
    if status == 410:
        when = datetime.fromtimestamp(timestamp / 1000, UTC) if isinstance(timestamp, int) else None
        return PushError(ErrorKind.TOKEN_GONE, reason, status, unregistered_at=when)
    if status == 0:  # no usable :status: treat like a server fault
        return PushError(ErrorKind.UNAVAILABLE, reason or "BadResponse", None)
    if reason in TOKEN_INVALID_REASONS:
        kind = ErrorKind.TOKEN_INVALID
    elif status == 403 or reason in AUTH_REASONS:
        kind = ErrorKind.AUTH
    elif status == 429:
        kind = ErrorKind.THROTTLED
    elif status >= 500:
        kind = ErrorKind.UNAVAILABLE
    else:  # 413 PayloadTooLarge and the 400s about headers or payload: this message cannot go
        kind = ErrorKind.PAYLOAD_REJECTED
    return PushError(kind, reason, status)


def connection_error(exc: BaseException) -> PushError:
    if isinstance(exc, MaxAttemptsExceeded):
        reason, text = "connection_failed", "could not get the request through to APNs (connection attempts exhausted)"
    elif isinstance(exc, InFlightLost):
        reason, text = "connection_lost", f"the answer may be lost: {exc}"
    else:
        reason, text = "connection_error", f"{type(exc).__name__}: {exc}"
    return PushError(ErrorKind.CONNECTION, reason, message=text)
