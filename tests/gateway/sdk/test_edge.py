"""Edge Network interact: token sync and push tracking, as the Messaging extension sends them (docs/protocols.md §3)."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import make_app, make_sent_message, push_ids, tracking_rows
from tests.gateway.sdk.test_classic import subscriptions
from tests.values import APNS_TOKEN, BUNDLE_ID, ECID, EDGE_CONFIG, PACKAGE
from tests.values import FCM_TOKEN as FCM

APNS_UPPER = APNS_TOKEN.upper()
STREAMING = {"konductorConfig": {"streaming": {"enabled": True, "recordSeparator": "\u0000", "lineFeed": "\n"}}}


def envelope(events: list[dict[str, Any]], os_name: str = "android") -> dict[str, Any]:
    return {
        "xdm": {
            "identityMap": {"ECID": [{"id": ECID, "authenticatedState": "ambiguous", "primary": False}]},
            "implementationDetails": {
                "name": f"https://ns.adobe.com/experience/mobilesdk/{os_name}",
                "version": "3.4.0+3.0.2",
                "environment": "app",
            },
        },
        "events": events,
        "meta": STREAMING,
    }


def token_sync(app_id: str, token: str, platform: str) -> dict[str, Any]:
    return {
        "data": {
            "pushNotificationDetails": [
                {
                    "appID": app_id,
                    "token": token,
                    "platform": platform,
                    "denylisted": False,
                    "identity": {"namespace": {"code": "ECID"}, "id": ECID},
                }
            ]
        },
        "xdm": {"_id": "1b0d8c5e-2f7a-4c1e-9d7e-0a4f6a1c2b3d", "timestamp": "2024-05-01T10:15:30.123Z"},
    }


def post(client: FlaskClient, config_id: str, body: dict[str, Any], hint: str = ""):
    path = f"/ee/{hint}/v1/interact" if hint else "/ee/v1/interact"
    # The Android SDK's org.json escapes "/" as "\/": a real JSON parser must cope.
    data = json.dumps(body).replace("/", "\\/")
    return client.post(
        f"{path}?configId={config_id}&requestId=6b1f0c3a-1111-2222-3333-444455556666",
        data=data,
        content_type="application/json",
        headers={"accept": "application/json"},
    )


def parse_stream(raw: bytes) -> list[dict[str, Any]]:
    """What the Android SDK does: split on \\n, drop the first character of each line, parse."""
    return [json.loads(line[1:]) for line in raw.decode().split("\n") if line]


def test_token_sync_both_platforms_idempotent(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    for _ in range(2):
        response = post(client, ids["edge_config"], envelope([token_sync(ids["package"], FCM, "fcm")]))
        assert response.status_code == 200
        assert parse_stream(response.data) == [{"requestId": "6b1f0c3a-1111-2222-3333-444455556666", "handle": []}]
        response = post(
            client,
            ids["edge_config"],
            envelope([token_sync(ids["bundle_id"], APNS_UPPER, "apnsSandbox")], "ios"),
            hint="or2",
        )
        assert response.status_code == 200
    subs = sorted(subscriptions(client, keys.viewer, ids["id"]), key=lambda s: s["platform"])
    assert [(s["platform"], s["token"], s["push_provider"], s["sdk"], s["ecid"]) for s in subs] == [
        ("android", FCM, "fcm", "edge", ECID),
        ("ios", APNS_UPPER.lower(), "apnsSandbox", "edge", ECID),
    ]


def test_same_apns_token_from_classic_and_edge_is_one_subscription(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    body = f"registrationToken={APNS_UPPER.lower()}&mobileAppUuid={ids['ios_key']}&userKey=".encode()
    client.post("/nms/mobile/1/registerIOS.jssp", data=body, content_type="application/x-www-form-urlencoded")
    post(client, ids["edge_config"], envelope([token_sync(ids["bundle_id"], APNS_UPPER, "apns")], "ios"))
    assert len(subscriptions(client, keys.viewer, ids["id"])) == 1


def tracking_event(
    event_type: str,
    execution: dict[str, str] | None,
    provider_id: str = "0:1714558530123456%a1b2",
    action: str | None = None,
) -> dict[str, Any]:
    xdm: dict[str, Any] = {
        "eventType": event_type,
        "pushNotificationTracking": {"pushProvider": "fcm", "pushProviderMessageID": provider_id},
        "application": {"launches": {"value": 1 if event_type != "pushTracking.receive" else 0}},
        "_id": "7f3e2a10-5b6c-4d8e-9f01-23456789abcd",
        "timestamp": "2024-05-01T10:16:02.456Z",
    }
    if action:
        xdm["pushNotificationTracking"]["customAction"] = {"actionID": action}
    if execution is not None:
        xdm["_experience"] = {
            "customerJourneyManagement": {
                "messageExecution": execution,
                "messageProfile": {"channel": {"_id": "https://ns.adobe.com/xdm/channels/push"}},
                "pushChannelContext": {"platform": "fcm"},
            }
        }
    return {"xdm": xdm, "meta": {"collect": {"datasetId": "65f0c0ffee0123456789abcd"}}}


def test_tracking_events_through_message_execution_and_provider_id(app: Flask, client: FlaskClient) -> None:
    ids = make_app(app)
    broadlog_id, delivery_id = make_sent_message(app, ids["id"], provider_message_id="0:1714558530123456%a1b2")
    mid, did = push_ids(app, broadlog_id, delivery_id, "edge")  # _xdm's ids, the signature on the first
    execution = {"messageExecutionID": mid, "messageID": did}
    unsigned = {"messageExecutionID": str(broadlog_id), "messageID": did}
    events = [
        tracking_event("pushTracking.receive", None),  # Android receive carries no _xdm: matched by provider id
        tracking_event("pushTracking.applicationOpened", execution),
        tracking_event("pushTracking.customAction", execution, action="buy"),
        tracking_event("pushTracking.applicationOpened", {"messageExecutionID": "999999", "messageID": "1"}),
        tracking_event("pushTracking.customAction", unsigned, action="sell"),  # no signature: nothing
        {"xdm": {"eventType": "commerce.purchases"}},  # not ours: ignored
    ]
    assert post(client, ids["edge_config"], envelope(events)).status_code == 200
    rows = tracking_rows(app)
    assert [(r["interaction"], r["tag"], r["action_id"]) for r in rows] == [
        ("received", "pushTracking.receive", None),
        ("opened", "pushTracking.applicationOpened", None),
        ("clicked", "pushTracking.customAction", "buy"),
    ]
    assert {r["broadlog_id"] for r in rows} == {broadlog_id} and rows[0]["ecid"] == ECID


def test_refusals_change_nothing(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    assert post(client, "unknown", envelope([token_sync(ids["package"], FCM, "fcm")])).status_code == 404
    wrong_app = post(client, ids["edge_config"], envelope([token_sync("com.other", FCM, "fcm")]))
    assert wrong_app.status_code == 404 and wrong_app.json["error"] == "unknown_app_id"
    # A good sync followed by a bad one in the same request: nothing of the request is stored.
    mixed = envelope([token_sync(ids["package"], FCM, "fcm"), token_sync(ids["package"], "x", "carrier-pigeon")])
    assert post(client, ids["edge_config"], mixed).status_code == 400
    assert post(client, ids["edge_config"], {"events": "nope"}).status_code == 400
    assert subscriptions(client, keys.viewer, ids["id"]) == []


def test_one_identifier_on_both_platforms_syncs_each_token(client: FlaskClient, keys) -> None:
    """An iOS bundle id equal to the Android package name (common) still finds each platform's part."""
    assert BUNDLE_ID == PACKAGE
    body = {
        "name": "Same identifier",
        "ios": {"bundle_id": BUNDLE_ID},
        "android": {"package_name": PACKAGE},
        "edge_config_id": EDGE_CONFIG,
    }
    created = client.post("/api/v1/apps", json=body, headers=keys.admin)
    assert created.status_code == 201
    android = post(client, EDGE_CONFIG, envelope([token_sync(PACKAGE, FCM, "fcm")]))
    ios = post(client, EDGE_CONFIG, envelope([token_sync(BUNDLE_ID, APNS_UPPER, "apns")], "ios"))
    assert (android.status_code, ios.status_code) == (200, 200)
    subs = sorted(subscriptions(client, keys.viewer, created.json["id"]), key=lambda s: s["platform"])
    assert [(s["platform"], s["push_provider"]) for s in subs] == [("android", "fcm"), ("ios", "apns")]
