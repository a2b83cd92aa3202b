"""Campaign's numeric codes (docs/protocols.md §4), with the readable names the API shows, and the
statuses of a delivery (stored and shown as their string values)."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Channel(IntEnum):
    EMAIL = 0
    SMS = 1
    MOBILE_APP = 40
    IOS = 41
    ANDROID = 42


class BroadLogStatus(IntEnum):
    IGNORED = 0
    SENT = 1
    FAILED = 2
    PENDING = 6
    CANCELLED = 7


class DeliveryStatus(StrEnum):
    """A delivery's ``status`` column and API field. The moves between them are in
    :mod:`domain.delivery_status`."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class FailureType(IntEnum):
    HARD = 1
    SOFT = 2
    IGNORED = 3


class FailureReason(IntEnum):
    NOT_DEFINED = 0
    USER_UNKNOWN = 1
    INVALID_DOMAIN = 2
    UNREACHABLE = 3
    ACCOUNT_DISABLED = 4
    MAILBOX_FULL = 5
    NOT_CONNECTED = 6
    ADDRESS_NOT_SPECIFIED = 7
    DENYLISTED = 8
    IN_QUARANTINE = 9
    DOUBLE = 10
    EXCLUDED_BY_SQL_RULE = 11
    EXCLUDED_AFTER_ARBITRATION = 12
    BAD_QUALITY_ADDRESS = 14
    UNQUALIFIED_ADDRESS = 15
    NOT_ELIGIBLE_FOR_OFFERS = 16
    TARGET_SIZE_LIMIT = 17
    REFUSED = 20
    ERROR_IGNORED = 25
    CONTROL_GROUP = 127


def readable(code: IntEnum | None) -> str | None:
    """``FailureReason.IN_QUARANTINE`` -> ``in_quarantine``; None stays None."""
    return None if code is None else code.name.lower()


def failure_reason_name(code: int | None) -> str | None:
    """How the API shows a stored failure reason (broadLog and quarantine alike): ``1`` ->
    ``user_unknown``; a number Campaign's list lacks stays that number, as text."""
    if code is None:
        return None
    try:
        return readable(FailureReason(code))
    except ValueError:
        return str(code)
