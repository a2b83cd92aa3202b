"""Every public identifier in the forms Adobe's products generate (and operators type), taken through
the API and through the SDK endpoints that carry it: accepted, stored and shown unchanged.

Made-up values (``pkey-1``, ``edge-1``, a 40-character FCM token) once hid a bug: a real Campaign
Standard pkey was refused by the API while every test passed. The forms, from :mod:`tests.values`:

- Campaign Standard pkey: ``@`` + URL-safe base64, ~120 characters, in the ``mobileAppV5`` path;
- Experience Cloud org id: 24 upper-case hex digits + ``@AdobeOrg``, in ``/id?d_orgid=``;
- ECID: 38 digits, a leading 0 included; APNs token: 64 hex digits (Classic: lower case, ``setPushIdentifier``: upper);
- FCM token: ``{22-character instance id}:APA91b{URL-safe base64}``, ~160 characters;
- Edge datastream id: a UUID, or ``{uuid}:{environment}``, in ``?configId=``;
- Campaign Classic integration key (``mobileAppUuid``): free text, most often a UUID;
- an iOS bundle id equal to the Android package name.

The last test is the whole Campaign Standard journey on both platforms, emulated providers included.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.cli import peers as runner
from sdk_configs.snippets import kotlin_literal, swift_literal
from tests.factories import service_account, tracking_rows
from tests.functional import sdk_wire
from tests.functional.test_push_end_to_end import run_worker_until
from tests.functional.test_sdk_config_roundtrip import fetch_config, send
from tests.functional.test_sdk_replay import ANDROID, APNS, FCM, FORM, IOS
from tests.gateway.api.helpers import app_body
from tests.gateway.sdk.test_classic import subscriptions
from tests.gateway.sdk.test_edge import envelope, post, token_sync
from tests.gateway.sdk.test_standard import id_call, launch
from tests.values import (
    ANDROID_KEY,
    ANDROID_KEY_ACCENTS,
    ANDROID_KEY_WORDS,
    APNS_TOKEN,
    BUNDLE_ID,
    ECID,
    ECID_LEADING_ZERO,
    EDGE_CONFIG,
    EDGE_CONFIG_DEV,
    FCM_TOKEN,
    IOS_KEY,
    IOS_KEY_ACCENTS,
    IOS_KEY_WORDS,
    ORG,
    PACKAGE,
    PKEY,
    PKEY_2,
    PKEY_LONG,
    ecid,
)

SDKS = ("campaign-classic", "campaign-standard", "edge", "native")
PLATFORMS = ("android", "ios")
# Integration keys (iOS, Android) as operators type them in Campaign Classic's mobile application service.
CLASSIC_KEYS = [
    pytest.param(IOS_KEY, ANDROID_KEY, id="uuids"),
    pytest.param(IOS_KEY_WORDS, ANDROID_KEY_WORDS, id="words"),
    pytest.param(IOS_KEY_ACCENTS, ANDROID_KEY_ACCENTS, id="non-ascii-words"),
]
# The identifiers of one app: each form of each appears in at least one set.
IDENTIFIER_SETS = [
    pytest.param(
        {"pkey": PKEY, "edge": EDGE_CONFIG, "ios_key": IOS_KEY, "android_key": ANDROID_KEY}, id="uuid-identifiers"
    ),
    pytest.param(
        {"pkey": PKEY_2, "edge": EDGE_CONFIG_DEV, "ios_key": IOS_KEY_WORDS, "android_key": ANDROID_KEY_WORDS},
        id="environment-config-and-words",
    ),
    pytest.param(
        {"pkey": PKEY_LONG, "edge": EDGE_CONFIG_DEV, "ios_key": IOS_KEY_ACCENTS, "android_key": ANDROID_KEY_ACCENTS},
        id="non-ascii-words",
    ),
]


def create_app(
    client: FlaskClient, keys: Any, ios_key: str | None = None, android_key: str | None = None, **fields: Any
) -> dict[str, Any]:
    """Create an app over the API whose iOS bundle id is its Android package name."""
    assert BUNDLE_ID == PACKAGE
    body = app_body(**fields)
    if ios_key is not None:
        body["ios"]["integration_key"] = ios_key
    if android_key is not None:
        body["android"]["integration_key"] = android_key
    response = client.post("/api/v1/apps", json=body, headers=keys.admin)
    assert response.status_code == 201, response.json
    shown: dict[str, Any] = response.json
    assert (shown["ios"]["bundle_id"], shown["android"]["package_name"]) == (BUNDLE_ID, PACKAGE)
    return shown


def ios_form(value: str) -> str:
    """A form value as the iOS Classic extension encodes it: non-ASCII letters stay raw UTF-8."""
    return "".join(char if not char.isascii() else quote(char, safe="") for char in value)


@pytest.mark.parametrize("ids", IDENTIFIER_SETS)
def test_the_api_keeps_every_identifier_and_the_sdk_configurations_carry_it(
    client: FlaskClient, keys: Any, ids: dict[str, str]
) -> None:
    created = create_app(
        client,
        keys,
        ios_key=ids["ios_key"],
        android_key=ids["android_key"],
        campaign_standard_pkey=ids["pkey"],
        edge_config_id=ids["edge"],
        experience_cloud_org=ORG,
    )
    fetched = client.get(f"/api/v1/apps/{created['id']}", headers=keys.viewer).json
    for shown in (created, fetched):
        assert (shown["campaign_standard_pkey"], shown["edge_config_id"], shown["experience_cloud_org"]) == (
            ids["pkey"],
            ids["edge"],
            ORG,
        )
        assert (shown["ios"]["integration_key"], shown["android"]["integration_key"]) == (
            ids["ios_key"],
            ids["android_key"],
        )

    for sdk in SDKS:
        for platform in PLATFORMS:
            response = client.get(
                f"/api/v1/apps/{created['id']}/sdk-config",
                query_string={"platform": platform, "sdk": sdk},
                headers=keys.marketer,
            )
            assert response.status_code == 200, (sdk, platform, response.json)
            document = response.json
            config = document["configuration"] or {}
            key = ids[f"{platform}_key"]
            if sdk == "campaign-classic":
                values = [key]
                assert config[f"campaignclassic.{platform}.integrationKey"] == key
                assert document["legacy"]["integration_key"] == key
            elif sdk == "campaign-standard":
                values = [ids["pkey"], ORG]
                assert (config["campaign.pkey"], config["experienceCloud.org"]) == (ids["pkey"], ORG)
            elif sdk == "edge":
                values = [ids["edge"]]
                assert config["edge.configId"] == ids["edge"]
            else:
                values = [key]
                assert document["native"]["integration_key"] == key
            literal = kotlin_literal if platform == "android" else swift_literal
            (snippet,) = document["snippets"].values()
            for value in values:
                assert literal(value) in snippet, (sdk, platform, value)


@pytest.mark.parametrize(("ios_key", "android_key"), CLASSIC_KEYS)
def test_campaign_classic_registers_with_every_form_of_integration_key(
    client: FlaskClient, keys: Any, ios_key: str, android_key: str
) -> None:
    created = create_app(client, keys, ios_key=ios_key, android_key=android_key)
    # The bodies each extension sends (test_sdk_replay), with the key encoded as each encodes it.
    android = ANDROID.format(key=quote(android_key, safe="")).encode()
    ios = IOS.format(key=ios_form(ios_key)).encode()
    for _ in range(2):  # the SDKs repeat a registration: nothing changes
        assert client.post("/nms/mobile/1/registerAndroid.jssp", data=android, content_type=FORM).status_code == 200
        assert client.post("/nms/mobile/1/registerIOS.jssp", data=ios, content_type=FORM).status_code == 200
    subs = sorted(subscriptions(client, keys.viewer, created["id"]), key=lambda s: s["platform"])
    assert [(s["platform"], s["sdk"], s["token"]) for s in subs] == [
        ("android", "campaign-classic", FCM),
        ("ios", "campaign-classic", APNS),
    ]
    shown = client.get(f"/api/v1/apps/{created['id']}", headers=keys.viewer).json
    assert (shown["ios"]["integration_key"], shown["android"]["integration_key"]) == (ios_key, android_key)


@pytest.mark.parametrize(("ios_key", "android_key"), CLASSIC_KEYS)
def test_native_registration_takes_every_form_of_integration_key(
    client: FlaskClient, keys: Any, ios_key: str, android_key: str
) -> None:
    created = create_app(client, keys, ios_key=ios_key, android_key=android_key)
    for key, token, platform in ((android_key, FCM_TOKEN, "android"), (ios_key, APNS_TOKEN.upper(), "ios")):
        response = client.post("/api/v1/subscriptions", json={"integration_key": key, "token": token})
        assert response.status_code == 201, response.json
        stored = client.get(f"/api/v1/subscriptions/{response.json['id']}", headers=keys.viewer).json
        assert (stored["app_id"], stored["platform"]) == (created["id"], platform)
        assert stored["token"] == (token.lower() if platform == "ios" else token)
    assert len(subscriptions(client, keys.viewer, created["id"])) == 2


@pytest.mark.parametrize("pkey", [PKEY, PKEY_2, PKEY_LONG], ids=["pkey", "pkey-with-underscore", "pkey-199"])
@pytest.mark.parametrize("escaped", [False, True], ids=["raw-at", "escaped-at"])
def test_campaign_standard_registers_with_a_real_pkey_org_ecid_and_tokens(
    client: FlaskClient, keys: Any, pkey: str, escaped: bool
) -> None:
    created = create_app(client, keys, campaign_standard_pkey=pkey, experience_cloud_org=ORG)
    in_path = quote(pkey, safe="") if escaped else pkey
    android_ecid, ios_ecid = ECID, ECID_LEADING_ZERO
    assert launch(client, in_path, "gcm", android_ecid).status_code == 200
    assert launch(client, in_path, "apns", ios_ecid).status_code == 200
    # Android: d_orgid with %40, the token percent-encoded. iOS: raw @, the token upper-case hex.
    android = id_call(client, "20919", FCM_TOKEN, android_ecid)
    ios = client.get(f"/id?d_rtbd=json&d_ver=2&d_orgid={ORG}&d_mid={ios_ecid}&d_cid=20920%01{APNS_TOKEN.upper()}")
    assert android.json == {"d_mid": android_ecid, "id_sync_ttl": 604800}
    assert ios.json == {"d_mid": ios_ecid, "id_sync_ttl": 604800}
    subs = sorted(subscriptions(client, keys.viewer, created["id"]), key=lambda s: s["platform"])
    assert [(s["platform"], s["sdk"], s["token"], s["ecid"]) for s in subs] == [
        ("android", "campaign-standard", FCM_TOKEN, android_ecid),
        ("ios", "campaign-standard", APNS_TOKEN, ios_ecid),
    ]
    assert client.get(f"/api/v1/apps/{created['id']}", headers=keys.viewer).json["campaign_standard_pkey"] == pkey


@pytest.mark.parametrize("config_id", [EDGE_CONFIG, EDGE_CONFIG_DEV], ids=["uuid", "uuid-environment"])
@pytest.mark.parametrize("escaped", [False, True], ids=["raw", "escaped"])
def test_edge_syncs_both_platforms_of_one_identifier_with_a_real_datastream_id(
    client: FlaskClient, keys: Any, config_id: str, escaped: bool
) -> None:
    created = create_app(client, keys, edge_config_id=config_id)
    in_query = quote(config_id, safe="") if escaped else config_id
    android = post(client, in_query, envelope([token_sync(PACKAGE, FCM_TOKEN, "fcm")]))
    ios = post(client, in_query, envelope([token_sync(BUNDLE_ID, APNS_TOKEN.upper(), "apnsSandbox")], "ios"))
    assert (android.status_code, ios.status_code) == (200, 200), (android.data, ios.data)
    subs = sorted(subscriptions(client, keys.viewer, created["id"]), key=lambda s: s["platform"])
    assert [(s["platform"], s["sdk"], s["token"], s["push_provider"], s["ecid"]) for s in subs] == [
        ("android", "edge", FCM_TOKEN, "fcm", ECID),
        ("ios", "edge", APNS_TOKEN, "apnsSandbox", ECID),
    ]
    assert client.get(f"/api/v1/apps/{created['id']}", headers=keys.viewer).json["edge_config_id"] == config_id


def test_campaign_standard_round_trip_on_both_platforms(
    app: Flask,
    live_server: str,
    keys: Any,
    sdk_http: httpx.Client,
    emulators: runner.RunningEmulators,
    pointed: dict[str, Any],
    gateway_with: Any,
) -> None:
    """A real pkey and org from app creation to the open: the app created over the API, each phone's
    launch registration and ``/id`` token (as the SDK builds them from the generated configuration),
    a delivery through the emulated APNs and FCM, and the phones' tracking calls with the ids the
    push carried."""
    body = app_body("Shop", campaign_standard_pkey=PKEY, experience_cloud_org=ORG)
    body["android"]["fcm"] = {"service_account": service_account(token_uri=emulators.fcm.token_url)}
    devices = {"android": (ecid("pixel"), FCM_TOKEN), "ios": (ecid("iphone"), APNS_TOKEN)}
    # The app is created through a gateway pointed at the emulators: only such a gateway takes a
    # service account whose token_uri is not Google's.
    created = gateway_with(**pointed).test_client().post("/api/v1/apps", json=body, headers=keys.admin)
    assert created.status_code == 201, created.text
    app_id = created.json["id"]
    with httpx.Client(base_url=live_server, timeout=10) as api:
        configs = {}
        for platform, (device_ecid, token) in devices.items():
            config = fetch_config(live_server, keys, app_id, platform, "campaign-standard")["configuration"]
            assert (config["campaign.pkey"], config["experienceCloud.org"]) == (PKEY, ORG)
            configs[platform] = config
            assert send(sdk_http, sdk_wire.standard_registration(config, platform, device_ecid)).json() == {}
            answer = send(sdk_http, sdk_wire.identity_push_token(config, platform, device_ecid, token)).json()
            assert answer == {"d_mid": device_ecid, "id_sync_ttl": 604800}
        subs = api.get(f"/api/v1/apps/{app_id}/subscriptions", headers=keys.viewer).json()["items"]
        assert sorted((s["platform"], s["sdk"], s["token"], s["ecid"]) for s in subs) == [
            (platform, "campaign-standard", token, device_ecid) for platform, (device_ecid, token) in devices.items()
        ]

        message = {"title": "Hello", "body": "Sent to a real pkey"}
        delivery = api.post(
            "/api/v1/deliveries",
            json={"app_id": app_id, "name": "Real values", "target": {"all": True}, "message": message},
            headers=keys.marketer,
        )
        assert delivery.status_code == 201, delivery.text
        url = f"/api/v1/deliveries/{delivery.json()['id']}"
        run_worker_until(
            pointed, lambda: api.get(url, headers=keys.viewer).json()["status"] == "completed", "the delivery"
        )
        assert api.get(url, headers=keys.viewer).json()["counts"]["sent"] == 2

        # What each phone received, and the ids it reports back (Standard sends _mId as it came).
        (android,) = [r for r in emulators.inbox.items("android") if r["token"] == FCM_TOKEN]
        (ios,) = [r for r in emulators.inbox.items("ios") if r["token"] == APNS_TOKEN]
        received = {"android": android["payload"]["data"], "ios": ios["payload"]}
        assert ios["headers"]["apns-topic"] == BUNDLE_ID
        logs = api.get(f"{url}/broadlogs", headers=keys.viewer).json()["items"]
        assert {(log["address"], str(log["id"])) for log in logs} == {
            (devices[platform][1], push["_mId"].partition(".")[0]) for platform, push in received.items()
        }
        for platform, push in received.items():
            # Standard apps: _dId stays plain hex (Android parses it), the signature rides on _mId.
            assert push["_acsDeliveryTracking"] == "on" and push["_dId"] == f"{delivery.json()['id']:x}"
            for action in ("7", "1"):  # impression, then open
                tracking = sdk_wire.standard_tracking(
                    configs[platform], push["_mId"], push["_dId"], action, devices[platform][0]
                )
                send(sdk_http, tracking)
        counts = api.get(url, headers=keys.viewer).json()["counts"]
        assert (counts["received"], counts["opened"]) == (2, 2)

    rows = tracking_rows(app)
    assert sorted((r["broadlog_id"], r["interaction"], r["source"], r["ecid"]) for r in rows) == sorted(
        (int(push["_mId"].partition(".")[0]), interaction, "campaign-standard", devices[platform][0])
        for platform, push in received.items()
        for interaction in ("received", "opened")
    )
