"""The one seam between the push engine and a push service: a batch in, one result per message out.

A provider never touches the database and never decides what an outcome means for the delivery:
it reports, per message, either success (with the provider's message id) or a :class:`PushError`
that says what the service answered and whether retrying can help. The engine maps that to
broadLog statuses, quarantine and retries (docs/protocols.md §4).

Providers are asyncio objects bound to the event loop they were created on: the worker keeps one
long-lived loop per process and builds its providers there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol


class ErrorKind(Enum):
    """What an error means for the token and for retrying (the engine maps these to Campaign codes)."""

    TOKEN_GONE = "token_gone"  # Unregistered / UNREGISTERED / 410: hard, quarantine now
    TOKEN_INVALID = "token_invalid"  # BadDeviceToken, DeviceTokenNotForTopic, invalid registration: hard
    TOKEN_MISMATCH = "token_mismatch"  # SENDER_ID_MISMATCH: soft, counts toward quarantine
    PAYLOAD_REJECTED = "payload_rejected"  # payload too large / invalid argument about the payload: ignored
    AUTH = "auth"  # our credentials or certificate were refused: soft / refused, not the token's fault
    THROTTLED = "throttled"  # 429 / QUOTA_EXCEEDED / TooManyRequests: retry after a pause
    UNAVAILABLE = "unavailable"  # 5xx, INTERNAL, UNAVAILABLE: retry
    TIMEOUT = "timeout"  # no answer within the request timeout: retry
    CONNECTION = "connection"  # connection lost or refused, GOAWAY: retry


#: The kinds the engine sends again (with back-off, while the delivery is valid and attempts
#: remain). AUTH is among them: the credentials are the app's, not the token's, and an operator
#: may fix them while the delivery can still go out; when it cannot, the message fails Soft /
#: Refused. The other kinds are final at once.
RETRYABLE = frozenset(
    {ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.AUTH}
)


@dataclass(frozen=True)
class PushError:
    kind: ErrorKind
    reason: str  # the service's own code: "BadDeviceToken", "UNREGISTERED", "timeout", ...
    status: int | None = None  # HTTP status when there was one
    message: str = ""
    retry_after: float | None = None  # seconds the service asked us to wait
    unregistered_at: datetime | None = None  # APNs 410 timestamp

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass(frozen=True)
class PushMessage:
    """One push to one device.

    ``payload`` is the platform's own body: for APNs the JSON document (``aps`` plus custom keys),
    for FCM the HTTP v1 ``message`` object without its ``token``. ``headers`` are APNs request
    headers (``apns-topic``, ``apns-push-type``, ``apns-priority``, ``apns-expiration``,
    ``apns-collapse-id``); FCM ignores them.
    """

    key: int  # the broadLog id: results are matched to messages by it
    token: str
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    key: int
    provider_message_id: str | None = None
    error: PushError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Provider(Protocol):
    """A push service client for one app platform's credentials."""

    platform: str  # "ios" | "android"

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        """Send every message; return exactly one result per message, in any order. Never raises
        for a per-message failure; raises only for a programming error."""
        ...

    async def close(self) -> None:
        """Release connections. The provider is unusable afterwards."""
        ...
