"""Each Adobe SDK's requests replayed byte for byte over real HTTP on loopback, then read back through
the JSON API: the subscription carries every field, and replaying again changes nothing."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from flask import Flask

from tests.factories import make_app, make_profile
from tests.values import ECID, ORG, apns_token, fcm_token

FCM = fcm_token("classic-android")
APNS = apns_token("classic-ios")
STANDARD_FCM = fcm_token("standard-android")
EDGE_APNS = apns_token("edge-ios")
FORM = "application/x-www-form-urlencoded;charset=UTF-8"

# Exactly what the Android extension sends: fixed field order, upper-case %XX, every non-ASCII byte encoded.
ANDROID = (
    "registrationToken=" + quote(FCM, safe="") + "&mobileAppUuid={key}"
    "&userKey=john.doe%2Btest%40example.com&deviceImei=9774d56d682e549c&deviceName=oriole&deviceModel=Pixel%206"
    "&deviceBrand=google&deviceManufacturer=Google&osName=android&osVersion=Android%2014&osLanguage=en-US"
    "&additionalParams=%3CadditionalParameters%3E%3Cparam%20name%3D%22city%22%20value%3D%22Z%C3%BCrich%22%2F%3E"
    "%3Cparam%20name%3D%22optin%22%20value%3D%22true%22%2F%3E%3C%2FadditionalParameters%3E"
)
# Exactly what the iOS extension sends: no deviceImei, sorted params, ` />`, &#x27;, raw UTF-8 letters.
IOS = (
    "registrationToken=" + APNS + "&mobileAppUuid={key}&userKey=müller%2B1%40example.com&deviceName=iPhone"
    "&deviceModel=iPhone&deviceBrand=Apple&deviceManufacturer=Apple&osName=iOS&osVersion=iOS%2017.5.1"
    "&osLanguage=de-CH&additionalParams=%3CadditionalParams%3E%3Cparam%20name%3D%22city%22%20value%3D%22Zürich%22"
    "%20%2F%3E%3Cparam%20name%3D%22loyalty%22%20value%3D%221200%22%20%2F%3E%3Cparam%20name%3D%22note%22%20value"
    "%3D%22Tom%20%26amp%3B%20Jerry%26%23x27%3Bs%20%26lt%3Bb%26gt%3B%22%20%2F%3E%3Cparam%20name%3D%22vip%22%20value"
    "%3D%22true%22%20%2F%3E%3C%2FadditionalParams%3E"
)


def replay_all(http: httpx.Client, ids: dict[str, Any]) -> None:
    ua = {"User-Agent": "Mozilla/5.0 (Linux; U; Android 14; en-US; Pixel 6 Build/UQ1A.240205.004)"}
    r = http.post(
        "/nms/mobile/1/registerAndroid.jssp",
        content=ANDROID.format(key=ids["android_key"]).encode(),
        headers={"Content-Type": FORM, **ua},
    )
    assert r.status_code == 200, r.text
    r = http.post(
        "/nms/mobile/1/registerIOS.jssp",
        content=IOS.format(key=ids["ios_key"]).encode(),
        headers={"Content-Type": FORM},
    )
    assert r.status_code == 200, r.text
    # Campaign Standard, Android: launch registration, then the Identity extension's /id call.
    r = http.post(
        f"/rest/head/mobileAppV5/{ids['pkey']}/subscriptions/{ECID}",
        content=json.dumps({"pushPlatform": "gcm", "marketingCloudId": ECID}),
        headers={"Content-Type": "application/json", "Accept": "*/*", "connection": "close"},
    )
    assert r.status_code == 200, r.text
    r = http.get(
        f"/id?d_ver=2&d_rtbd=json&d_orgid={ORG.replace('@', '%40')}&d_mid={ECID}"
        f"&d_cid=20919%01{quote(STANDARD_FCM, safe='')}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json() == {"d_mid": ECID, "id_sync_ttl": 604800}
    # Edge, iOS: token sync with the upper-case token MobileCore.setPushIdentifier produces.
    body = {
        "xdm": {
            "identityMap": {"ECID": [{"id": ECID, "authenticatedState": "ambiguous", "primary": False}]},
            "implementationDetails": {
                "name": "https://ns.adobe.com/experience/mobilesdk/ios",
                "version": "5.0.0+5.0.0",
                "environment": "app",
            },
        },
        "events": [
            {
                "data": {
                    "pushNotificationDetails": [
                        {
                            "appID": ids["bundle_id"],
                            "token": EDGE_APNS.upper(),
                            "platform": "apns",
                            "denylisted": False,
                            "identity": {"namespace": {"code": "ECID"}, "id": ECID},
                        }
                    ]
                },
                "xdm": {"_id": "A1B2C3D4-0000-1111-2222-333344445555", "timestamp": "2024-05-01T10:15:30.123Z"},
            }
        ],
        "meta": {"konductorConfig": {"streaming": {"enabled": True, "recordSeparator": "\u0000", "lineFeed": "\n"}}},
    }
    r = http.post(
        f"/ee/v1/interact?configId={ids['edge_config']}&requestId=A1B2",
        content=json.dumps(body).replace("/", "\\/"),
        headers={"Content-Type": "application/json", "accept": "application/json"},
    )
    assert r.status_code == 200 and r.content.startswith(b"\x00{")


def test_every_sdk_request_over_real_http(app: Flask, live_server: str, keys) -> None:
    ids = make_app(app)
    profile_id = make_profile(app, "john.doe+test@example.com")
    with httpx.Client(base_url=live_server, timeout=10) as http:
        replay_all(http, ids)
        first = http.get(f"/api/v1/apps/{ids['id']}/subscriptions", headers=keys.viewer).json()["items"]
        replay_all(http, ids)
        second = http.get(f"/api/v1/apps/{ids['id']}/subscriptions", headers=keys.viewer).json()["items"]

    def stable(subs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in s.items() if k != "last_registered_at"} for s in subs]

    assert stable(first) == stable(second)
    by_sdk = {(s["sdk"], s["platform"]): s for s in second}
    assert len(second) == 4
    android = by_sdk[("campaign-classic", "android")]
    assert android["token"] == FCM and android["profile"] == {
        "id": profile_id,
        "external_id": "john.doe+test@example.com",
    }
    assert android["device"]["device_model"] == "Pixel 6" and android["additional_params"] == {
        "city": "Zürich",
        "optin": "true",
    }
    ios = by_sdk[("campaign-classic", "ios")]
    assert ios["user_key"] == "müller+1@example.com" and ios["profile"] is None
    assert ios["device"]["device_imei"] is None and ios["device"]["os_version"] == "iOS 17.5.1"
    assert ios["additional_params"] == {"city": "Zürich", "loyalty": "1200", "note": "Tom & Jerry's <b>", "vip": "true"}
    standard = by_sdk[("campaign-standard", "android")]
    assert standard["token"] == STANDARD_FCM and standard["ecid"] == ECID
    edge = by_sdk[("edge", "ios")]
    assert edge["token"] == EDGE_APNS and edge["push_provider"] == "apns" and edge["ecid"] == ECID
    for sub in second:
        assert sub["created_at"] and sub["last_registered_at"] and sub["disabled"] is False
