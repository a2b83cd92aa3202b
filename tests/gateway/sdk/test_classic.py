"""Campaign Classic registration, replayed byte for byte as the SDKs build it (docs/protocols.md §1.1)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.metrics import UNVERIFIED_USER_KEYS
from tests.factories import make_app, make_profile
from tests.values import ANDROID_KEY, APNS_TOKEN, FCM_TOKEN, IOS_KEY

FORM = "application/x-www-form-urlencoded;charset=UTF-8"
ANDROID_PARAMS = (
    '<additionalParameters><param name="loyalty" value="gold"/><param name="vip" value="true"/>'
    '<param name="score" value="1.0E7"/><param name="quote" value="it&#39;s &amp; &lt;ok&gt;"/>'
    "</additionalParameters>"
)
IOS_PARAMS = (
    '<additionalParams><param name="loyalty" value="gold" /><param name="city" value="Zürich" />'
    '<param name="quote" value="it&#x27;s" /></additionalParams>'
)


def android_body(key: str, token: str = FCM_TOKEN, user_key: str = "alice@example.com") -> bytes:
    pairs = [
        ("registrationToken", token),
        ("mobileAppUuid", key),
        ("userKey", user_key),
        ("deviceImei", "9774d56d682e549c"),
        ("deviceName", "oriole"),
        ("deviceModel", "Pixel 6"),
        ("deviceBrand", "google"),
        ("deviceManufacturer", "Google"),
        ("osName", "android"),
        ("osVersion", "Android 14"),
        ("osLanguage", "en-US"),
        ("additionalParams", ANDROID_PARAMS),
    ]
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs).encode()


def ios_body(key: str, token: str = APNS_TOKEN, user_key: str = "alice@example.com", params: str = IOS_PARAMS) -> bytes:
    # The iOS encoder leaves non-ASCII letters as raw UTF-8 bytes.
    pairs = [
        ("registrationToken", token),
        ("mobileAppUuid", key),
        ("userKey", user_key),
        ("deviceName", "iPhone"),
        ("deviceModel", "iPhone15,2"),
        ("deviceBrand", "Apple"),
        ("deviceManufacturer", "Apple"),
        ("osName", "iOS"),
        ("osVersion", "17.4"),
        ("osLanguage", "de-CH"),
        ("additionalParams", params),
    ]
    return "&".join(f"{k}={quote(v, safe='ü')}" for k, v in pairs).encode()


def subscriptions(client: FlaskClient, headers: dict[str, str], app_id: int) -> list[dict]:
    response = client.get(f"/api/v1/apps/{app_id}/subscriptions", headers=headers)
    assert response.status_code == 200, response.json
    return response.json["items"]


def test_android_registration_stores_every_field_and_repeats_idempotently(
    app: Flask, client: FlaskClient, keys
) -> None:
    ids = make_app(app)
    profile_id = make_profile(app, "alice@example.com", email="alice@example.com")
    for _ in range(2):
        response = client.post(
            "/nms/mobile/1/registerAndroid.jssp", data=android_body(ids["android_key"]), content_type=FORM
        )
        assert response.status_code == 200
    [sub] = subscriptions(client, keys.viewer, ids["id"])
    assert sub["platform"] == "android" and sub["sdk"] == "campaign-classic" and sub["push_provider"] == "fcm"
    assert sub["token"] == FCM_TOKEN
    assert sub["user_key"] == "alice@example.com"
    assert sub["profile"] == {"id": profile_id, "external_id": "alice@example.com"}
    assert sub["device"] == {
        "device_imei": "9774d56d682e549c",
        "device_name": "oriole",
        "device_model": "Pixel 6",
        "device_brand": "google",
        "device_manufacturer": "Google",
        "os_name": "android",
        "os_version": "Android 14",
        "os_language": "en-US",
    }
    assert sub["additional_params"] == {
        "loyalty": "gold",
        "vip": "true",
        "score": "1.0E7",
        "quote": "it's & <ok>",
    }
    assert sub["disabled"] is False


def test_ios_registration_with_raw_utf8_and_upper_case_token(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    for endpoint, token in (("registerIOS", APNS_TOKEN), ("registerIphone", APNS_TOKEN.upper())):
        response = client.post(
            f"/nms/mobile/1/{endpoint}.jssp", data=ios_body(ids["ios_key"], token), content_type=FORM
        )
        assert response.status_code == 200
    [sub] = subscriptions(client, keys.viewer, ids["id"])
    assert sub["token"] == APNS_TOKEN
    assert sub["push_provider"] == "apns"
    assert sub["additional_params"] == {"loyalty": "gold", "city": "Zürich", "quote": "it's"}
    assert sub["device"]["os_language"] == "de-CH"
    assert sub["profile"] is None  # no such profile: the subscription stays unlinked


def test_unknown_user_key_never_creates_a_profile(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    client.post(
        "/nms/mobile/1/registerAndroid.jssp",
        data=android_body(ids["android_key"], user_key="nobody"),
        content_type=FORM,
    )
    assert client.get("/api/v1/profiles/nobody", headers=keys.viewer).status_code == 404
    [sub] = subscriptions(client, keys.viewer, ids["id"])
    assert sub["user_key"] == "nobody" and sub["profile"] is None


def test_empty_user_key_unlinks(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    make_profile(app, "alice@example.com")
    client.post("/nms/mobile/1/registerAndroid.jssp", data=android_body(ids["android_key"]), content_type=FORM)
    client.post(
        "/nms/mobile/1/registerAndroid.jssp",
        data=android_body(ids["android_key"], user_key=""),
        content_type=FORM,
    )
    [sub] = subscriptions(client, keys.viewer, ids["id"])
    assert sub["user_key"] is None and sub["profile"] is None


def test_a_user_key_links_only_with_its_hash_where_the_app_requires_one(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    make_profile(app, "alice@example.com")
    url = f"/api/v1/apps/{ids['id']}"
    secret = client.post(f"{url}/user-key-secret", headers=keys.admin).json["user_key_secret"]
    client.patch(url, json={"user_key_verification": "required"}, headers=keys.admin)
    right = hmac.new(secret.encode(), b"alice@example.com", hashlib.sha256).hexdigest()
    # The iOS extension writes the params sorted, so userKeyHash comes between loyalty and quote.
    vouched = IOS_PARAMS.replace(
        '<param name="quote"', f'<param name="userKeyHash" value="{right}" /><param name="quote"'
    )
    missing = UNVERIFIED_USER_KEYS.labels("campaign-classic", "ios", "missing")._value.get()
    for params in (IOS_PARAMS, vouched):
        response = client.post(
            "/nms/mobile/1/registerIOS.jssp", data=ios_body(ids["ios_key"], params=params), content_type=FORM
        )
        assert response.status_code == 200
        [sub] = subscriptions(client, keys.viewer, ids["id"])
        assert sub["additional_params"] == {"loyalty": "gold", "city": "Zürich", "quote": "it's"}
        if params == IOS_PARAMS:  # stored as if it had no user key, and counted
            assert sub["user_key"] is None and sub["profile"] is None
            assert UNVERIFIED_USER_KEYS.labels("campaign-classic", "ios", "missing")._value.get() == missing + 1
        else:
            assert sub["user_key"] == "alice@example.com" and sub["profile"]["external_id"] == "alice@example.com"


def test_plus_encoded_spaces_are_accepted(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    body = f"registrationToken={FCM_TOKEN}&mobileAppUuid={ids['android_key']}&deviceModel=Pixel+6&userKey=".encode()
    assert client.post("/nms/mobile/1/registerAndroid.jssp", data=body, content_type=FORM).status_code == 200
    [sub] = subscriptions(client, keys.viewer, ids["id"])
    assert sub["device"]["device_model"] == "Pixel 6"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (f"mobileAppUuid={ANDROID_KEY}", 400, "missing_field"),
        (b"registrationToken=abc", 400, "missing_field"),
        (f"registrationToken={FCM_TOKEN}&mobileAppUuid=unknown".encode(), 404, "unknown_integration_key"),
        (
            f"registrationToken={FCM_TOKEN}&mobileAppUuid={IOS_KEY}".encode(),
            400,
            "wrong_platform",
        ),
        (
            f"registrationToken={FCM_TOKEN}&mobileAppUuid={ANDROID_KEY}&deviceName=%FF".encode(),
            400,
            "invalid_encoding",
        ),
        (f"registrationToken=bad%20token!&mobileAppUuid={ANDROID_KEY}", 400, "invalid_token"),
        (
            f"registrationToken={FCM_TOKEN}&mobileAppUuid={ANDROID_KEY}&additionalParams="
            + quote('<!DOCTYPE x [<!ENTITY a "b">]><additionalParameters/>'),
            400,
            "invalid_params",
        ),
        (
            f"registrationToken={FCM_TOKEN}&mobileAppUuid={ANDROID_KEY}&additionalParams=%3Cx",
            400,
            "invalid_params",
        ),
        (
            f"registrationToken={FCM_TOKEN}&mobileAppUuid={ANDROID_KEY}&deviceName={'x' * 300}",
            400,
            "field_too_long",
        ),
    ],
)
def test_bad_registrations_are_refused_and_store_nothing(
    app: Flask, client: FlaskClient, keys, body, status, code
) -> None:
    ids = make_app(app)
    response = client.post(
        "/nms/mobile/1/registerAndroid.jssp",
        data=body if isinstance(body, bytes) else body.encode(),
        content_type=FORM,
    )
    assert response.status_code == status, response.data
    assert response.json["error"] == code
    assert subscriptions(client, keys.viewer, ids["id"]) == []


def test_wrong_content_type_and_oversized_body(app: Flask, client: FlaskClient) -> None:
    ids = make_app(app)
    response = client.post(
        "/nms/mobile/1/registerAndroid.jssp",
        data=android_body(ids["android_key"]),
        content_type="application/json",
    )
    assert response.status_code == 415
    big = android_body(ids["android_key"]) + b"&pad=" + b"x" * 70_000
    response = client.post("/nms/mobile/1/registerAndroid.jssp", data=big, content_type=FORM)
    assert response.status_code == 413
    assert response.json["error"] == "payload_too_large"
