"""pushgate's one error hierarchy.

::

    PushgateError
    ├── ConfigError                 a setting is wrong; start-up stops with the message
    ├── ClientError                 the caller sent something we refuse (HTTP 4xx, CLI message)
    │   ├── BadRequest              400  malformed body, wrong field, bad encoding
    │   ├── Unauthorized            401  missing or unknown API key
    │   ├── Forbidden               403  the key's role may not do this
    │   ├── NotFound                404
    │   ├── Conflict                409  uniqueness, idempotency
    │   ├── RequestTooLarge         413  request body over the surface's limit
    │   └── UnsupportedMediaType    415
    └── ExternalError               a remote system (FCM, APNs, Platform, Blob, sFTP) failed
        ├── RetryableError          try again later (429, 5xx, timeouts, lost connections)
        └── PermanentError          retrying cannot help (bad token, rejected payload, auth)

Views translate ``ClientError`` into ``{"error": code, "message": text}`` with its status; the
CLI prints the message. Vendor exceptions are translated into ``ExternalError`` subclasses at the
boundary module that talks to the vendor, with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any


class PushgateError(Exception):
    """Base of every error pushgate raises on purpose."""


class ConfigError(PushgateError):
    """A setting is missing or invalid. The message is one line naming the variable."""


class ClientError(PushgateError):
    """The caller's request cannot be served; maps to an HTTP 4xx."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(ClientError):
    status = 400
    code = "bad_request"


class Unauthorized(ClientError):
    status = 401
    code = "unauthorized"


class Forbidden(ClientError):
    status = 403
    code = "forbidden"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class Conflict(ClientError):
    status = 409
    code = "conflict"


class RequestTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class ExternalError(PushgateError):
    """A remote system failed. ``retry_after`` is the seconds the remote asked us to wait, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableError(ExternalError):
    """Transient: the same call may succeed later."""


class PermanentError(ExternalError):
    """Retrying the same call cannot succeed."""
