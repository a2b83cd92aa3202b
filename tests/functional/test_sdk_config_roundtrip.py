"""The generated configuration, fetched over HTTP, points each SDK family on each platform at a
running pushgate: requests built from it the way the SDK builds them (hosts, integration keys,
pkey, org, configId, dataset all taken from the configuration) reach the live server through the
public host, are accepted, and leave a subscription and a tracking row behind."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask

from tests.factories import make_app, make_sent_message, push_ids, tracking_rows
from tests.functional import sdk_wire

CASES = [
    (sdk, platform)
    for sdk in ("campaign-classic", "campaign-standard", "edge", "native")
    for platform in ("android", "ios")
]


def fetch_config(live_server: str, keys: Any, app_id: int, platform: str, sdk: str) -> dict[str, Any]:
    response = httpx.get(
        f"{live_server}/api/v1/apps/{app_id}/sdk-config",
        params={"platform": platform, "sdk": sdk},
        headers=keys.marketer,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    assert document["warnings"] == []
    return document


def send(client: httpx.Client, request: httpx.Request, status: int = 200) -> httpx.Response:
    response = client.send(request)
    assert response.status_code == status, (request.url, response.text)
    return response


def subscriptions(live_server: str, keys: Any, app_id: int) -> list[dict[str, Any]]:
    response = httpx.get(f"{live_server}/api/v1/apps/{app_id}/subscriptions", headers=keys.viewer, timeout=10)
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.mark.parametrize(("sdk", "platform"), CASES)
def test_a_request_built_from_the_configuration_is_accepted(
    app: Flask, live_server: str, keys: Any, sdk_http: httpx.Client, sdk: str, platform: str
) -> None:
    ids = make_app(app)
    document = fetch_config(live_server, keys, ids["id"], platform, sdk)
    config = document["configuration"]
    identifier = ids["bundle_id"] if platform == "ios" else ids["package"]

    if sdk == "campaign-classic":
        send(sdk_http, sdk_wire.classic_registration(config, platform))
    elif sdk == "campaign-standard":
        assert send(sdk_http, sdk_wire.standard_registration(config, platform)).json() == {}
        assert send(sdk_http, sdk_wire.identity_push_token(config, platform)).json()["d_mid"] == sdk_wire.ECID
    elif sdk == "edge":
        assert send(sdk_http, sdk_wire.edge_token_sync(config, platform, identifier)).content.startswith(b"\x00{")
    else:
        assert config is None
        send(sdk_http, sdk_wire.native_registration(document["native"], platform), status=201)

    (subscription,) = subscriptions(live_server, keys, ids["id"])
    assert (subscription["sdk"], subscription["platform"]) == (sdk, platform)
    assert subscription["token"] == sdk_wire.TOKENS[platform]
    if sdk == "edge":
        assert subscription["push_provider"] == ("fcm" if platform == "android" else "apnsSandbox")

    # A message sent to that subscription, then opened: tracked through the configured host too.
    broadlog_id, delivery_id = make_sent_message(app, ids["id"], subscription["id"])
    mid, did = push_ids(app, broadlog_id, delivery_id, sdk)
    if sdk == "campaign-classic":
        request = sdk_wire.classic_tracking(config, platform, mid, did, "2")
    elif sdk == "campaign-standard":
        request = sdk_wire.standard_tracking(config, mid, did, "1")
    elif sdk == "edge":
        request = sdk_wire.edge_tracking(config, platform, mid, did)
    else:
        request = sdk_wire.native_tracking(document["native"], mid, did, "2")
    send(sdk_http, request)
    rows = tracking_rows(app)
    assert [(r["broadlog_id"], r["interaction"], r["source"]) for r in rows] == [
        (broadlog_id, "opened", "campaign-classic" if sdk == "native" else sdk)
    ]


@pytest.mark.parametrize(
    ("sdk", "key"),
    [
        ("campaign-classic", "campaignclassic.android.integrationKey"),
        ("campaign-standard", "campaign.pkey"),
        ("edge", "edge.configId"),
    ],
)
def test_a_configuration_with_another_key_is_refused(
    app: Flask, live_server: str, keys: Any, sdk_http: httpx.Client, sdk: str, key: str
) -> None:
    """The round trip proves something: the gateway accepts the generated keys, not any keys."""
    ids = make_app(app)
    config = dict(fetch_config(live_server, keys, ids["id"], "android", sdk)["configuration"])
    config[key] = "not-a-key-of-this-app"
    if sdk == "campaign-classic":
        request = sdk_wire.classic_registration(config, "android")
    elif sdk == "campaign-standard":
        request = sdk_wire.standard_registration(config, "android")
    else:
        request = sdk_wire.edge_token_sync(config, "android", ids["package"])
    send(sdk_http, request, status=404)
    assert subscriptions(live_server, keys, ids["id"]) == []


def test_the_transport_refuses_hosts_other_than_pushgate(
    app: Flask, live_server: str, keys: Any, sdk_http: Any
) -> None:
    """Without experienceCloud.server the Identity extension calls Adobe's dpm.demdex.net."""
    ids = make_app(app)
    config = dict(fetch_config(live_server, keys, ids["id"], "ios", "campaign-standard")["configuration"])
    del config["experienceCloud.server"]
    with pytest.raises(AssertionError, match=r"dpm\.demdex\.net"):
        sdk_http.send(sdk_wire.identity_push_token(config, "ios"))
    del config["experienceCloud.org"]
    with pytest.raises(sdk_wire.SdkWouldNotSend, match=r"experienceCloud\.org"):
        sdk_wire.identity_push_token(config, "ios")
