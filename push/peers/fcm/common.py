"""What the FCM emulator's parts share: its constants, the token prefixes that force an
answer (:data:`TOKEN_PREFIXES`), a :class:`Reply` and the :class:`Invalid` refusal."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

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

logger = logging.getLogger("push.peers.fcm")

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


class Invalid(Exception):
    """An INVALID_ARGUMENT answer: message plus the offending field."""

    def __init__(self, message: str, field_path: str = "message", with_fcm_error: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.field_path = field_path
        self.with_fcm_error = with_fcm_error
