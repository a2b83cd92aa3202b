"""Campaign Standard: mobileAppV5 registration plus the ECID service's /id token call (docs/protocols.md §2)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import make_app
from tests.gateway.sdk.test_classic import subscriptions
from tests.values import APNS_TOKEN, ECID, ORG, fcm_token
from tests.values import FCM_TOKEN as FCM

APNS_UPPER = APNS_TOKEN.upper()


def id_call(client: FlaskClient, dpid: str, token: str, ecid: str = ECID, org: str = ORG):
    # Android order and encoding; the iOS form (d_rtbd first, raw @) is covered below.
    return client.get(
        f"/id?d_ver=2&d_rtbd=json&d_orgid={org.replace('@', '%40')}&d_mid={ecid}"
        f"&d_cid={dpid}%01{token.replace(':', '%3A')}"
    )


def launch(client: FlaskClient, pkey: str, platform: str, ecid: str = ECID):
    return client.post(
        f"/rest/head/mobileAppV5/{pkey}/subscriptions/{ecid}",
        json={"pushPlatform": platform, "marketingCloudId": ecid},
        headers={"Accept": "*/*"},
    )


@pytest.mark.parametrize("token_first", [True, False])
def test_android_token_and_launch_in_either_order(app: Flask, client: FlaskClient, keys, token_first: bool) -> None:
    ids = make_app(app)
    calls = [lambda: id_call(client, "20919", FCM), lambda: launch(client, ids["pkey"], "gcm")]
    for call in calls if token_first else reversed(calls):
        response = call()
        assert response.status_code == 200
    for call in calls:  # the SDK repeats both; nothing changes
        call()
    [sub] = subscriptions(client, keys.viewer, ids["id"])
    assert (sub["platform"], sub["sdk"], sub["token"], sub["ecid"]) == ("android", "campaign-standard", FCM, ECID)


def test_id_answers_json_echoing_ecid_and_never_opts_out(app: Flask, client: FlaskClient) -> None:
    make_app(app)
    response = id_call(client, "20919", FCM)
    assert response.status_code == 200
    assert response.json == {"d_mid": ECID, "id_sync_ttl": 604800}
    assert isinstance(response.json["id_sync_ttl"], int)


def test_ios_dpid_upper_case_token_raw_at_sign(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    assert launch(client, ids["pkey"], "apns").status_code == 200
    response = client.get(f"/id?d_rtbd=json&d_ver=2&d_orgid={ORG}&d_mid={ECID}&d_cid=20920%01{APNS_UPPER}")
    assert response.status_code == 200
    [sub] = subscriptions(client, keys.viewer, ids["id"])
    assert (sub["platform"], sub["token"], sub["push_provider"]) == ("ios", APNS_UPPER.lower(), "apns")


def test_rotated_token_replaces_and_null_token_removes(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    launch(client, ids["pkey"], "gcm")
    id_call(client, "20919", FCM)
    id_call(client, "20919", fcm_token("rotated"))
    [sub] = subscriptions(client, keys.viewer, ids["id"])
    assert sub["token"] == fcm_token("rotated")
    id_call(client, "20919", "null")  # Android's setPushIdentifier(null)
    assert subscriptions(client, keys.viewer, ids["id"]) == []


def test_refusals(app: Flask, client: FlaskClient, keys) -> None:
    ids = make_app(app)
    assert launch(client, "unknown-pkey", "gcm").status_code == 404
    assert id_call(client, "20919", FCM, org="Unknown@AdobeOrg").status_code == 404
    assert id_call(client, "20919", FCM, ecid="not an ecid!").status_code == 400
    response = client.post(
        f"/rest/head/mobileAppV5/{ids['pkey']}/subscriptions/{ECID}",
        json={"pushPlatform": "sms", "marketingCloudId": ECID},
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    response = client.post(
        f"/rest/head/mobileAppV5/{ids['pkey']}/subscriptions/{ECID}",
        json={"pushPlatform": "gcm", "marketingCloudId": "other"},
    )
    assert response.status_code == 400
    response = client.post(
        f"/rest/head/mobileAppV5/{ids['pkey']}/subscriptions/{ECID}", data="{", content_type="application/json"
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_json"
    assert subscriptions(client, keys.viewer, ids["id"]) == []
