"""Rows as XDM records: stable ids, the fields each schema requires, identities, validation."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from store.codes import BroadLogStatus, FailureReason, FailureType
from store.queries.export import AddressRow, BroadLogRow, ProfileRow, TrackingRow
from sync import xdm
from sync.xdm import records
from sync.xdm.records import NoIdentity
from tests.values import APNS_TOKEN, ECID, crm_id, ecid

WHEN = datetime(2026, 11, 28, 21, 40, 0, 123456, tzinfo=UTC)
TENANT = "acme"
KEY = "_acme"
CRM = crm_id(4211)
TRACKING_ECID = ecid("tracking call")
SUBSCRIPTION_ECID = ecid("subscription")


def broadlog_row(**changes: object) -> BroadLogRow:
    row = BroadLogRow(
        id=1001,
        delivery_id=7,
        delivery_name="Winter sale",
        app_id=3,
        subscription_id=40,
        platform="android",
        push_provider="fcm",
        ecid=ECID,
        channel=42,
        status=int(BroadLogStatus.SENT),
        failure_type=None,
        failure_reason=None,
        error_message=None,
        provider_message_id="projects/p/messages/0:1",
        attempts=1,
        resent_after_crash=False,
        created_at=WHEN,
        event_date=WHEN,
        external_id=CRM,
    )
    return row._replace(**changes)


def tracking_row(**changes: object) -> TrackingRow:
    row = TrackingRow(
        id=55,
        broadlog_id=1001,
        delivery_id=7,
        delivery_name="Winter sale",
        app_id=3,
        interaction="opened",
        source="edge",
        tag="pushTracking.applicationOpened",
        action_id=None,
        ecid=TRACKING_ECID,
        log_date=WHEN,
        external_id=CRM,
        platform="ios",
        push_provider="apnsSandbox",
        subscription_ecid=SUBSCRIPTION_ECID,
        provider_message_id="apns-id-1",
        channel=41,
    )
    return row._replace(**changes)


def address_row(**changes: object) -> AddressRow:
    row = AddressRow(
        id=9,
        app_id=3,
        platform="ios",
        address=APNS_TOKEN,
        status="quarantine",
        error_count=1,
        failure_reason=int(FailureReason.USER_UNKNOWN),
        error_text="Unregistered",
        first_error_at=WHEN,
        last_error_at=WHEN,
        unregistered_at=None,
        updated_at=WHEN,
        external_id=CRM,
        ecid=None,
    )
    return row._replace(**changes)


def test_broadlog_record_is_valid_and_carries_the_campaign_and_feedback_fields() -> None:
    record = records.broadlog(broadlog_row(), KEY, "CRMID")
    assert xdm.validator("broadlog", TENANT).problem(record) is None
    assert record["eventType"] == "message.feedback"
    assert record["timestamp"] == "2026-11-28T21:40:00.123Z"
    assert record["_experience"]["campaign"] | {} == {
        "broadlogID": "1001",
        "deliveryID": "7",
        "deliveryName": "Winter sale",
        "recipientID": CRM,
        "externalID": CRM,
        "channel": "android",
        "status": "sent",
    }
    cjm = record["_experience"]["customerJourneyManagement"]
    assert cjm["messageDeliveryfeedback"] == {"feedbackStatus": "sent"}
    assert cjm["messageProfile"] == {"channel": {"_id": "https://ns.adobe.com/xdm/channels/push"}}
    assert cjm["pushChannelContext"] == {"platform": "fcm"}
    assert record[KEY]["pushgate"]["broadLog"]["providerMessageId"] == "projects/p/messages/0:1"


def test_the_same_row_always_gives_the_same_id_and_another_status_another() -> None:
    first = records.broadlog(broadlog_row(), KEY, "CRMID")
    again = records.broadlog(broadlog_row(delivery_name="renamed"), KEY, "Other")
    failed = records.broadlog(broadlog_row(status=int(BroadLogStatus.FAILED)), KEY, "CRMID")
    other = records.broadlog(broadlog_row(id=1002), KEY, "CRMID")
    assert first["_id"] == again["_id"] == records.record_id("broadlog", 1001, 1)
    assert len({first["_id"], failed["_id"], other["_id"]}) == 3
    assert (
        records.trackinglog(tracking_row(), KEY, "CRMID")["_id"] == records.trackinglog(tracking_row(), KEY, "X")["_id"]
    )


@pytest.mark.parametrize(
    ("status", "failure_type", "reason", "feedback"),
    [
        (BroadLogStatus.FAILED, FailureType.HARD, FailureReason.USER_UNKNOWN, ("bounce", "hard")),
        (BroadLogStatus.FAILED, FailureType.SOFT, FailureReason.UNREACHABLE, ("bounce", "soft")),
        (BroadLogStatus.FAILED, FailureType.IGNORED, FailureReason.REFUSED, ("error", None)),
        (BroadLogStatus.IGNORED, FailureType.IGNORED, FailureReason.DENYLISTED, ("denylist", None)),
        (BroadLogStatus.IGNORED, FailureType.IGNORED, FailureReason.IN_QUARANTINE, ("exclude", None)),
        (BroadLogStatus.CANCELLED, None, None, ("exclude", None)),
    ],
)
def test_final_statuses_as_message_delivery_feedback(
    status: int, failure_type: int | None, reason: int | None, feedback: tuple[str, str | None]
) -> None:
    row = broadlog_row(status=int(status), failure_type=failure_type, failure_reason=reason, error_message="x  y")
    record = records.broadlog(row, KEY, "CRMID")
    assert xdm.validator("broadlog", TENANT).problem(record) is None
    got = record["_experience"]["customerJourneyManagement"]["messageDeliveryfeedback"]
    assert (got["feedbackStatus"], got.get("messageFailure", {}).get("type")) == feedback
    assert record["_experience"]["campaign"]["status"] == BroadLogStatus(status).name.lower()
    if reason is not None:
        assert record["_experience"]["campaign"]["reason"] == FailureReason(reason).name.lower()
        assert record[KEY]["pushgate"]["broadLog"]["failureReasonCode"] == reason
    assert record["_experience"]["campaign"]["reasonMessage"] == "x y"


def test_identities_external_id_primary_ecid_secondary_else_ecid_primary_else_refused() -> None:
    both = records.broadlog(broadlog_row(), KEY, "CRMID")["identityMap"]
    assert both == {
        "CRMID": [{"id": CRM, "primary": True, "authenticatedState": "authenticated"}],
        "ECID": [{"id": broadlog_row().ecid, "primary": False, "authenticatedState": "ambiguous"}],
    }
    anonymous = records.broadlog(broadlog_row(external_id=None), KEY, "CRMID")
    assert anonymous["identityMap"] == {
        "ECID": [{"id": broadlog_row().ecid, "primary": True, "authenticatedState": "ambiguous"}]
    }
    assert "externalId" not in anonymous[KEY]["pushgate"]
    assert xdm.validator("broadlog", TENANT).problem(anonymous) is None
    with pytest.raises(NoIdentity) as caught:
        records.broadlog(broadlog_row(external_id=None, ecid=None), KEY, "CRMID")
    assert caught.value.record_id == records.record_id("broadlog", 1001, 1)
    tracked = records.trackinglog(tracking_row(), KEY, "Loyalty")["identityMap"]
    assert list(tracked) == ["Loyalty", "ECID"] and [e["id"] for e in tracked["ECID"]] == [
        TRACKING_ECID,
        SUBSCRIPTION_ECID,
    ]
    for record in (both, tracked):
        assert sum(entry.get("primary", False) for entries in record.values() for entry in entries) == 1


def test_tracking_records_by_interaction() -> None:
    validator = xdm.validator("trackinglog", TENANT)
    opened = records.trackinglog(tracking_row(), KEY, "CRMID")
    clicked = records.trackinglog(tracking_row(interaction="clicked", action_id="buy"), KEY, "CRMID")
    received = records.trackinglog(tracking_row(interaction="received"), KEY, "CRMID")
    for record in (opened, clicked, received):
        assert validator.problem(record) is None
        assert record["eventType"] == "message.tracking"
        assert record["pushNotificationTracking"]["pushProviderMessageID"] == "apns-id-1"
    cjm = opened["_experience"]["customerJourneyManagement"]
    assert cjm["messageInteraction"]["interactionType"] == "open"
    assert cjm["pushChannelContext"] == {"platform": "apns"}
    assert clicked["_experience"]["customerJourneyManagement"]["messageInteraction"]["interactionType"] == "click"
    assert clicked["pushNotificationTracking"]["customAction"] == {"actionID": "buy"}
    assert "messageInteraction" not in received["_experience"]["customerJourneyManagement"]
    assert received[KEY]["pushgate"]["trackingLog"]["interaction"] == "received"
    assert opened["_experience"]["campaign"]["trackinglogID"] == "55"


def test_quarantine_and_preference_records() -> None:
    quarantined = records.quarantine(address_row(), KEY, "CRMID")
    assert xdm.validator("quarantine", TENANT).problem(quarantined) is None
    assert quarantined["_experience"]["campaign"]["quarantine"] is True
    assert quarantined["_experience"]["campaign"]["reason"] == "user_unknown"
    released = records.quarantine(address_row(status="valid", updated_at=WHEN.replace(hour=23)), KEY, "CRMID")
    assert released["_experience"]["campaign"]["quarantine"] is False
    assert released["_id"] != quarantined["_id"]
    profile = records.preferences(ProfileRow(4, CRM, "n", WHEN, (ecid(1), ecid(2))), KEY, "CRMID")
    assert xdm.validator("preferences", TENANT).problem(profile) is None
    assert profile["consents"]["marketing"]["push"] == {"val": "n", "time": "2026-11-28T21:40:00.123Z"}
    assert profile["identityMap"]["CRMID"][0]["primary"] is True
    assert [e["primary"] for e in profile["identityMap"]["ECID"]] == [False, False]
    assert "timestamp" not in profile and "eventType" not in profile


def test_invalid_records_are_named_with_their_path() -> None:
    validator = xdm.validator("broadlog", TENANT)
    good = records.broadlog(broadlog_row(), KEY, "CRMID")
    bad_time = copy.deepcopy(good)
    bad_time["timestamp"] = "yesterday"
    assert validator.problem(bad_time) == 'invalid XDM at timestamp: "yesterday" is not a "date-time"'
    extra = copy.deepcopy(good)
    extra[KEY]["pushgate"]["broadLog"]["surprise"] = 1
    assert "_acme/pushgate/broadLog" in (validator.problem(extra) or "")
    no_identity = copy.deepcopy(good)
    no_identity["identityMap"] = {}
    assert validator.problem(no_identity) is not None
    wrong_tenant = records.broadlog(broadlog_row(), "_other", "CRMID")
    assert validator.problem(wrong_tenant) is not None


def test_registry_bodies_name_the_tenant_and_adobe_field_groups() -> None:
    group = xdm.field_group("broadlog", TENANT)
    assert group["meta:intendedToExtend"] == [xdm.EXPERIENCE_EVENT]
    assert "_acme" in group["definitions"]["pushgate"]["properties"]
    assert "{TENANT_ID}" not in json.dumps(group)
    body = xdm.schema("broadlog", TENANT, "https://ns.adobe.com/acme/mixins/1")
    assert xdm.schema_refs(body) == [
        xdm.EXPERIENCE_EVENT,
        "https://ns.adobe.com/experience/campaign/experienceevent-campaign-delivery-log",
        "https://ns.adobe.com/experience/customerJourneyManagement/message-delivery-feedback",
        "https://ns.adobe.com/experience/customerJourneyManagement/messageprofile",
        "https://ns.adobe.com/acme/mixins/1",
    ]
    profile = xdm.schema("preferences", TENANT, "x")
    assert xdm.schema_refs(profile)[:3] == [
        xdm.PROFILE,
        "https://ns.adobe.com/xdm/context/identitymap",
        "https://ns.adobe.com/xdm/mixins/profile-consents",
    ]
    assert xdm.identity_path("_acme") == "/_acme/pushgate/externalId"
    with pytest.raises(ValueError, match="tenant id"):
        xdm.field_group("broadlog", "acme corp")
