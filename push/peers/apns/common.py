"""What the APNs emulator's parts share: Apple's limits, the token prefixes that force an
answer (:data:`TOKEN_PREFIXES`), and a request as the checks see it (:class:`Request`)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

PLATFORM = "ios"
GOAWAY_GRACE = 1.0  # seconds a connection stays open (reading, ignoring) after its GOAWAY
MAX_PAYLOAD = 4096
MAX_VOIP_PAYLOAD = 5120
MAX_COLLAPSE_ID = 64
TOKEN_MAX_AGE = 3600  # seconds: Apple refuses provider tokens older than one hour
PUSH_TYPES = frozenset(
    {"alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk"}
)
# A topic for these push types is the bundle id plus a suffix.
TOPIC_SUFFIXES = (".voip", ".complication", ".pushkit.fileprovider", ".push-type.liveactivity", ".voip-ptt")
PRIORITIES = frozenset({"1", "5", "10"})
TOKEN_RE = re.compile(r"^(?:[0-9a-fA-F]{2}){32,100}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PATH_PREFIX = "/3/device/"
INBOX_PATH = "/_emulator/inbox"  # not Apple's: lets a process read what this one received

KeyLookup = Callable[[str, str], "EllipticCurvePublicKey | str | bytes | None"]
Behaviour = Literal["error", "slow", "goaway"]


@dataclass(frozen=True)
class Injection:
    """What a token prefix makes the emulator do."""

    behaviour: Behaviour
    status: int | None = None
    reason: str | None = None
    once: bool = False  # only the first request of the exact token; later ones succeed
    description: str = ""


TOKEN_PREFIXES: dict[str, Injection] = {
    "e4000000": Injection("error", 400, "BadDeviceToken", description="400 BadDeviceToken, always"),
    "e4000001": Injection("error", 400, "DeviceTokenNotForTopic", description="400 DeviceTokenNotForTopic, always"),
    "e4100000": Injection("error", 410, "Unregistered", description="410 Unregistered with a timestamp, always"),
    "e4290000": Injection("error", 429, "TooManyRequests", description="429 TooManyRequests, always"),
    "e5000000": Injection("error", 500, "InternalServerError", description="500 InternalServerError, always"),
    "e5030000": Injection("error", 503, "ServiceUnavailable", description="503 ServiceUnavailable, always"),
    "f4290000": Injection("error", 429, "TooManyRequests", once=True, description="429 once, then success"),
    "f5000000": Injection("error", 500, "InternalServerError", once=True, description="500 once, then success"),
    "f5030000": Injection("error", 503, "ServiceUnavailable", once=True, description="503 once, then success"),
    "d0000000": Injection("slow", description="success after the slow delay (default 3 s)"),
    "c0000000": Injection("goaway", description="GOAWAY and connection closed, always"),
    "fc000000": Injection("goaway", once=True, description="GOAWAY once, then success"),
}
PREFIX_LENGTH = 8


def injection_for(token: str) -> Injection | None:
    return TOKEN_PREFIXES.get(token[:PREFIX_LENGTH].lower())


@dataclass
class Answer:
    status: int | None  # None: no HTTP answer (GOAWAY)
    reason: str | None = None
    timestamp: int | None = None
    behaviour: Behaviour | None = None


@dataclass
class Stream:
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    oversized: bool = False


@dataclass
class Request:
    """A complete request as the checks see it; ``record`` becomes its inbox entry."""

    method: str
    path: str
    token: str
    headers: dict[str, str]
    duplicate: bool
    body: bytes
    oversized: bool
    payload: Any
    client_topic: str | None
    has_client_cert: bool
    record: dict[str, Any]

    @property
    def apns_id(self) -> str | None:
        return self.headers.get("apns-id")

    @classmethod
    def parse(cls, stream: Stream, client_topic: str | None, has_client_cert: bool) -> Request:
        pseudo = {k: v for k, v in stream.headers if k.startswith(":")}
        headers: dict[str, str] = {}
        duplicate = False
        for name, value in stream.headers:
            if not name.startswith(":"):
                duplicate = duplicate or name in headers
                headers[name] = value
        path = pseudo.get(":path", "")
        token = path[len(PATH_PREFIX) :] if path.startswith(PATH_PREFIX) else ""
        body = bytes(stream.body)
        payload: Any = None
        if body and not stream.oversized:
            with contextlib.suppress(ValueError):
                payload = json.loads(body)
        record: dict[str, Any] = {
            "token": token,
            "headers": headers,
            "payload": payload,
            "path": path,
            "size": len(body),
            "auth": None,
        }
        return cls(
            pseudo.get(":method", ""),
            path,
            token,
            headers,
            duplicate,
            body,
            stream.oversized,
            payload,
            client_topic,
            has_client_cert,
            record,
        )
