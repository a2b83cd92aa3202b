"""Rows of the store as XDM records: pure functions, one per stream.

Every record gets a deterministic ``_id``: a UUID v5 of the stream, the source row's id and what
makes that version of the row (the final status of a broadLog row, the state and change time of a
quarantine entry, the consent and change time of a profile). The same source row therefore always
gives the same ``_id``, whichever run or process maps it, and a record re-sent after a crash is
recognisable as the same event.

Identities (``identityMap``):

- the profile's external id, in the configured namespace (``CRMID`` unless the sync configuration
  says otherwise; a custom *Cross-device* namespace that must exist in the Platform), is the
  **primary** identity, ``authenticatedState: authenticated``;
- every ECID known for the device (the subscription's, or the one a tracking call carried) is
  added under ``ECID``, ``ambiguous``; when there is no profile, the first ECID is the primary;
- a row with neither (a message to an unlinked subscription that never reported an ECID, a
  quarantined token no subscription holds any more) cannot carry a primary identity, which a
  Profile-enabled dataset needs: it is not sent, and :class:`NoIdentity` says why, so the export
  reports it among the run's rejected rows (identity: the ``_id`` it would have had).

Timestamps are UTC, ISO 8601 with milliseconds and ``Z``. Empty values are left out, never sent
as ``null`` (the Platform refuses null fields).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from store.codes import BroadLogStatus, Channel, FailureReason, FailureType
from store.queries.export import AddressRow, BroadLogRow, ProfileRow, TrackingRow

#: UUID v5 namespace of pushgate's record ids (fixed forever: changing it changes every _id).
ID_NAMESPACE = uuid.UUID("6c1f3b9e-5d2a-5f4e-9b7c-2a8d4e6f1c30")
#: Identity namespace of the external id unless the sync configuration names another.
DEFAULT_NAMESPACE = "CRMID"
ECID = "ECID"
#: The push channel of AJO's Message Profile Details (``messageProfile.channel._id``).
PUSH_CHANNEL = "https://ns.adobe.com/xdm/channels/push"
REASON_CHARS = 1000
#: ECIDs kept per profile record (a profile with more devices keeps its newest ones).
MAX_ECIDS = 20

_STATUS = {code: code.name.lower() for code in BroadLogStatus}
_REASON = {code: code.name.lower() for code in FailureReason}
_FAILURE_TYPE = {FailureType.HARD: "hard", FailureType.SOFT: "soft"}
_CHANNEL = {Channel.IOS: "ios", Channel.ANDROID: "android"}
_PLATFORM_PROVIDER = {"ios": "apns", "android": "fcm"}
_INTERACTION = {"opened": "open", "clicked": "click"}


class NoIdentity(ValueError):
    """The row names no profile and no ECID: it cannot carry a primary identity. ``record_id``
    is the ``_id`` the record would have had."""

    def __init__(self, message: str, record_id: str = "") -> None:
        super().__init__(message)
        self.record_id = record_id


def record_id(*parts: object) -> str:
    """The deterministic ``_id`` of a record made of ``parts``."""
    return str(uuid.uuid5(ID_NAMESPACE, ":".join(str(part) for part in parts)))


def xdm_time(value: datetime) -> str:
    """``2026-11-28T21:40:00.123Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def identity_map(
    external_id: str | None, ecids: Iterable[str | None], namespace: str, record_id: str = ""
) -> dict[str, Any]:
    """``identityMap`` with exactly one primary identity; NoIdentity when there is none to give."""
    known = list(dict.fromkeys(e for e in ecids if e))[:MAX_ECIDS]
    result: dict[str, Any] = {}
    if external_id:
        result[namespace] = [{"id": external_id, "primary": True, "authenticatedState": "authenticated"}]
    if known:
        primary = not external_id
        result[ECID] = [
            {"id": ecid, "primary": primary and n == 0, "authenticatedState": "ambiguous"}
            for n, ecid in enumerate(known)
        ]
    if not result:
        raise NoIdentity("no identity: no profile and no ECID are known for this device", record_id)
    return result


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None and value != ""}


def _platform(platform: str | None, channel: int | None) -> str | None:
    if platform:
        return platform
    return _CHANNEL.get(Channel(channel)) if channel in (Channel.IOS, Channel.ANDROID) else None


def _channel_context(platform: str | None, push_provider: str | None) -> dict[str, Any]:
    provider = "apns" if push_provider in ("apns", "apnsSandbox") else push_provider
    provider = provider or _PLATFORM_PROVIDER.get(platform or "")
    context: dict[str, Any] = {"messageProfile": {"channel": {"_id": PUSH_CHANNEL}}}
    if provider in ("apns", "fcm"):
        context["pushChannelContext"] = {"platform": provider}
    return context


def _text(value: str | None, limit: int = REASON_CHARS) -> str | None:
    if not value:
        return None
    value = " ".join(value.split())
    return value[:limit] or None


def feedback(status: int, failure_type: int | None, failure_reason: int | None) -> dict[str, Any]:
    """AJO message delivery feedback of a final broadLog status.

    Sent -> ``sent``; Failed with a Hard or Soft type -> ``bounce`` with ``messageFailure.type``
    hard/soft (category ``sync``: the provider answered the send); Failed and Ignored (a payload
    the provider refused) -> ``error``; Ignored at analysis -> ``denylist`` for a denylisted
    profile, else ``exclude`` (quarantine); Cancelled -> ``exclude`` (code ``cancelled``).
    """
    reason = _REASON.get(FailureReason(failure_reason)) if failure_reason in _REASON else None
    code = None if failure_reason is None else str(failure_reason)
    if status == BroadLogStatus.SENT:
        return {"feedbackStatus": "sent"}
    if status == BroadLogStatus.FAILED:
        kind = _FAILURE_TYPE.get(FailureType(failure_type)) if failure_type in _FAILURE_TYPE else None
        failure = _clean({"type": kind, "category": "sync", "reason": reason, "code": code})
        return {"feedbackStatus": "bounce" if kind else "error", "messageFailure": failure}
    if status == BroadLogStatus.CANCELLED:
        return {"feedbackStatus": "exclude", "messageExclusion": {"code": "cancelled", "reason": "delivery cancelled"}}
    exclusion = _clean({"code": code, "reason": reason})
    denied = failure_reason == FailureReason.DENYLISTED
    return {
        "feedbackStatus": "denylist" if denied else "exclude",
        **({"messageExclusion": exclusion} if exclusion else {}),
    }


def broadlog(row: BroadLogRow, tenant_key: str, namespace: str) -> dict[str, Any]:
    """A final broadLog row as a ``message.feedback`` ExperienceEvent."""
    rid = record_id("broadlog", row.id, row.status)
    identities = identity_map(row.external_id, (row.ecid,), namespace, rid)
    platform = _platform(row.platform, row.channel)
    reason = _REASON.get(FailureReason(row.failure_reason)) if row.failure_reason in _REASON else None
    campaign = _clean(
        {
            "broadlogID": str(row.id),
            "deliveryID": str(row.delivery_id),
            "deliveryName": row.delivery_name,
            "recipientID": row.external_id,
            "externalID": row.external_id,
            "channel": platform,
            "status": _STATUS.get(BroadLogStatus(row.status)),
            "reason": reason,
            "reasonMessage": _text(row.error_message),
        }
    )
    details = _clean(
        {
            "id": str(row.id),
            "deliveryId": str(row.delivery_id),
            "subscriptionId": None if row.subscription_id is None else str(row.subscription_id),
            "appId": None if row.app_id is None else str(row.app_id),
            "platform": platform,
            "pushProvider": row.push_provider,
            "statusCode": row.status,
            "failureTypeCode": row.failure_type,
            "failureReasonCode": row.failure_reason,
            "providerMessageId": row.provider_message_id,
            "attempts": row.attempts,
            "resentAfterCrash": row.resent_after_crash or None,
            "createdAt": xdm_time(row.created_at),
        }
    )
    return {
        "_id": rid,
        "timestamp": xdm_time(row.event_date),
        "eventType": "message.feedback",
        "identityMap": identities,
        "_experience": {
            "campaign": campaign,
            "customerJourneyManagement": {
                "messageDeliveryfeedback": feedback(row.status, row.failure_type, row.failure_reason),
                **_channel_context(platform, row.push_provider),
            },
        },
        tenant_key: {"pushgate": _clean({"externalId": row.external_id, "broadLog": details})},
    }


def trackinglog(row: TrackingRow, tenant_key: str, namespace: str) -> dict[str, Any]:
    """A trackingLog row as a ``message.tracking`` ExperienceEvent.

    ``opened`` and ``clicked`` set ``messageInteraction.interactionType`` to ``open`` and
    ``click``; ``received`` (and ``impression``) have no interaction type in Adobe's enumeration
    and keep theirs in ``_{tenant}.pushgate.trackingLog.interaction``. The push provider's
    message id and a clicked action's id go to Push Notification Tracking.
    """
    rid = record_id("trackinglog", row.id)
    identities = identity_map(row.external_id, (row.ecid, row.subscription_ecid), namespace, rid)
    platform = _platform(row.platform, row.channel)
    cjm: dict[str, Any] = {}
    interaction = _INTERACTION.get(row.interaction)
    if interaction:
        cjm["messageInteraction"] = {"interactionType": interaction, "entityType": "message"}
    cjm.update(_channel_context(platform, row.push_provider))
    tracking = _clean({"pushProviderMessageID": row.provider_message_id, "pushProvider": row.push_provider})
    if row.action_id and row.interaction == "clicked":
        tracking["customAction"] = {"actionID": row.action_id}
    record: dict[str, Any] = {
        "_id": rid,
        "timestamp": xdm_time(row.log_date),
        "eventType": "message.tracking",
        "identityMap": identities,
        "_experience": {
            "campaign": _clean(
                {
                    "trackinglogID": str(row.id),
                    "broadlogID": str(row.broadlog_id),
                    "deliveryID": str(row.delivery_id),
                    "deliveryName": row.delivery_name,
                    "recipientID": row.external_id,
                    "externalID": row.external_id,
                    "channel": platform,
                }
            ),
            "customerJourneyManagement": cjm,
        },
    }
    if tracking:
        record["pushNotificationTracking"] = tracking
    details = _clean(
        {
            "id": str(row.id),
            "broadLogId": str(row.broadlog_id),
            "deliveryId": str(row.delivery_id),
            "appId": None if row.app_id is None else str(row.app_id),
            "interaction": row.interaction,
            "source": row.source,
            "tag": row.tag,
            "actionId": row.action_id,
            "platform": platform,
        }
    )
    record[tenant_key] = {"pushgate": _clean({"externalId": row.external_id, "trackingLog": details})}
    return record


def quarantine(row: AddressRow, tenant_key: str, namespace: str) -> dict[str, Any]:
    """A push token's quarantine state, as it was at ``updated_at``, as an ExperienceEvent
    (``eventType`` ``pushgate.quarantine``; ``_experience.campaign.quarantine`` is true for the
    quarantine and denylisted states)."""
    changed = xdm_time(row.updated_at)
    rid = record_id("quarantine", row.id, changed, row.status)
    identities = identity_map(row.external_id, (row.ecid,), namespace, rid)
    reason = _REASON.get(FailureReason(row.failure_reason)) if row.failure_reason in _REASON else None
    details = _clean(
        {
            "id": str(row.id),
            "appId": str(row.app_id),
            "platform": row.platform,
            "token": row.address,
            "status": row.status,
            "errorCount": row.error_count,
            "failureReasonCode": row.failure_reason,
            "failureReason": reason,
            "errorText": _text(row.error_text),
            "firstErrorAt": None if row.first_error_at is None else xdm_time(row.first_error_at),
            "lastErrorAt": None if row.last_error_at is None else xdm_time(row.last_error_at),
            "unregisteredAt": None if row.unregistered_at is None else xdm_time(row.unregistered_at),
        }
    )
    return {
        "_id": rid,
        "timestamp": changed,
        "eventType": "pushgate.quarantine",
        "identityMap": identities,
        "_experience": {
            "campaign": _clean(
                {
                    "quarantine": row.status in ("quarantine", "denylisted"),
                    "recipientID": row.external_id,
                    "externalID": row.external_id,
                    "channel": row.platform,
                    "reason": reason,
                    "reasonMessage": _text(row.error_text),
                }
            ),
            "customerJourneyManagement": _channel_context(row.platform, None),
        },
        tenant_key: {"pushgate": _clean({"externalId": row.external_id, "address": details})},
    }


def preferences(row: ProfileRow, tenant_key: str, namespace: str) -> dict[str, Any]:
    """A profile's push consent as an XDM Individual Profile record (``consents.marketing.push``)."""
    changed = xdm_time(row.updated_at)
    rid = record_id("preferences", row.id, changed, row.push_consent)
    return {
        "_id": rid,
        "identityMap": identity_map(row.external_id, row.ecids, namespace, rid),
        "consents": {"marketing": {"push": {"val": row.push_consent, "time": changed}}, "metadata": {"time": changed}},
        tenant_key: {
            "pushgate": {
                "externalId": row.external_id,
                "preferences": {"pushConsent": row.push_consent, "updatedAt": changed},
            }
        },
    }
