"""Hostile input on every public endpoint: whatever arrives, the answer is never a 5xx, and a refused
request leaves stored data exactly as it was (hypothesis drives the bodies, headers and queries)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.runtime import runtime
from store.models import PushIdentity, StandardRegistration, Subscription, TrackingLog
from tests.factories import make_app, make_sent_message
from tests.values import ANDROID_KEY, ECID, IOS_KEY, ORG

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded;charset=UTF-8",
        "application/json",
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "",
        "application/json; charset=latin-1",
        "application/merge-patch+json",
    ]
)
FORM_PATHS = [
    "/nms/mobile/1/registerAndroid.jssp",
    "/nms/mobile/1/registerIOS.jssp",
    "/nms/mobile/1/registerIphone.jssp",
]
FIELDS = [
    "registrationToken",
    "mobileAppUuid",
    "userKey",
    "deviceImei",
    "deviceName",
    "deviceModel",
    "deviceBrand",
    "deviceManufacturer",
    "osName",
    "osVersion",
    "osLanguage",
    "additionalParams",
]


def snapshot(app: Flask) -> list[Any]:
    with app.app_context(), runtime().sessions() as session:
        rows: list[Any] = []
        for model in (Subscription, StandardRegistration, PushIdentity, TrackingLog):
            for obj in session.scalars(select(model)):
                rows.append(tuple(sorted((k, repr(v)) for k, v in vars(obj).items() if not k.startswith("_"))))
        return sorted(rows)


@pytest.fixture
def ids(app: Flask) -> dict[str, Any]:
    return make_app(app)


def check(app: Flask, response: Any, before: list[Any]) -> None:
    assert response.status_code < 500, response.data
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and {"error", "message"} <= body.keys(), response.data
        assert snapshot(app) == before


# A form field value: anything from clean text to control characters, long strings and XML bombs.
VALUES = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=400),
    st.sampled_from(
        [
            "",
            "%",
            "%ZZ",
            "%FF%FE",
            "<additionalParameters><param name='a' value='b'/></additionalParameters>",
            '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><additionalParams>&b;</additionalParams>',
            '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><additionalParams>&x;</additionalParams>',
            "<additionalParams><param value='no name'/></additionalParams>",
            "<x/>",
            "\x00",
            "a" * 5000,
        ]
    ),
)


@FUZZ
@given(
    path=st.sampled_from(FORM_PATHS),
    fields=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=12),
    use_key=st.booleans(),
    content_type=CONTENT_TYPES,
    raw_tail=st.binary(max_size=40),
)
def test_classic_registration_fuzz(
    app: Flask, client: FlaskClient, ids, path, fields, use_key, content_type, raw_tail
) -> None:
    if use_key:
        fields["mobileAppUuid"] = ids["ios_key"] if "IOS" in path or "Iphone" in path else ids["android_key"]
    body = "&".join(f"{quote(k)}={quote(v)}" for k, v in fields.items()).encode() + raw_tail
    before = snapshot(app)
    check(app, client.post(path, data=body, content_type=content_type), before)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=20,
)


def edge_like(ids: dict[str, Any]) -> st.SearchStrategy[Any]:
    detail = st.fixed_dictionaries(
        {},
        optional={
            "appID": st.sampled_from([ids["package"], ids["bundle_id"], "com.other"]) | JSON_VALUES,
            "token": st.sampled_from(["tok-123456789", "ABCDEF0123456789ABCDEF0123456789"]) | JSON_VALUES,
            "platform": st.sampled_from(["fcm", "apns", "apnsSandbox", "x"]) | JSON_VALUES,
            "denylisted": JSON_VALUES,
            "identity": JSON_VALUES,
        },
    )
    event = st.fixed_dictionaries(
        {},
        optional={
            "data": st.fixed_dictionaries({}, optional={"pushNotificationDetails": st.lists(detail, max_size=3)})
            | JSON_VALUES,
            "xdm": st.fixed_dictionaries(
                {},
                optional={
                    "eventType": st.sampled_from(
                        ["pushTracking.receive", "pushTracking.applicationOpened", "pushTracking.customAction"]
                    )
                    | JSON_VALUES,
                    "_experience": JSON_VALUES,
                    "pushNotificationTracking": JSON_VALUES,
                },
            )
            | JSON_VALUES,
        },
    )
    return (
        st.fixed_dictionaries(
            {"events": st.lists(event, max_size=4) | JSON_VALUES}, optional={"xdm": JSON_VALUES, "meta": JSON_VALUES}
        )
        | JSON_VALUES
    )


@FUZZ
@given(
    data=st.data(),
    hint=st.sampled_from(["", "or2", "x" * 300]),
    good_config=st.booleans(),
    content_type=CONTENT_TYPES,
    mangle=st.sampled_from(["none", "truncate", "latin1", "deep"]),
)
def test_edge_interact_fuzz(
    app: Flask, client: FlaskClient, ids, data, hint, good_config, content_type, mangle
) -> None:
    body = json.dumps(data.draw(edge_like(ids))).encode()
    if mangle == "truncate":
        body = body[: len(body) // 2]
    elif mangle == "latin1":
        body = body.replace(b'"', b'"\xe9', 1)
    elif mangle == "deep":
        body = b"[" * 100_000 + b"]" * 100_000
    path = f"/ee/{hint}/v1/interact" if hint else "/ee/v1/interact"
    config = ids["edge_config"] if good_config else "nope"
    before = snapshot(app)
    check(app, client.post(f"{path}?configId={config}", data=body, content_type=content_type), before)


@FUZZ
@given(
    body=JSON_VALUES
    | st.fixed_dictionaries(
        {
            "pushPlatform": st.sampled_from(["gcm", "apns", "x"]) | JSON_VALUES,
            "marketingCloudId": st.text(max_size=80) | JSON_VALUES,
        }
    ),
    ecid=st.text(max_size=80),
    good_pkey=st.booleans(),
    content_type=CONTENT_TYPES,
)
def test_standard_registration_fuzz(app: Flask, client: FlaskClient, ids, body, ecid, good_pkey, content_type) -> None:
    pkey = ids["pkey"] if good_pkey else "nope"
    before = snapshot(app)
    url = f"/rest/head/mobileAppV5/{pkey}/subscriptions/{quote(ecid, safe='')}"
    check(app, client.post(url, data=json.dumps(body), content_type=content_type), before)


@FUZZ
@given(
    query=st.lists(
        st.tuples(st.sampled_from(["d_orgid", "d_mid", "d_cid", "d_ver", "x"]), st.text(max_size=200)), max_size=6
    ),
    good_org=st.booleans(),
    good_ecid=st.booleans(),
    dpid=st.sampled_from(["20919", "20920", "1", ""]),
)
def test_id_sync_fuzz(app: Flask, client: FlaskClient, ids, query, good_org, good_ecid, dpid) -> None:
    if good_org:
        query.append(("d_orgid", ORG))
    if good_ecid:
        query.append(("d_mid", ECID))
    query.append(("d_cid", f"{dpid}\x01" + (query[0][1] if query else "")))
    before = snapshot(app)
    response = client.get("/id?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query))
    check(app, response, before)
    if response.status_code == 200:
        assert response.json["d_mid"] and isinstance(response.json["id_sync_ttl"], int)


@FUZZ
@given(raw=st.text(max_size=200), mcid=st.none() | st.text(max_size=80))
def test_tracking_fuzz_always_200(app: Flask, client: FlaskClient, ids, raw, mcid) -> None:
    make_sent_message(app, ids["id"])
    query = f"id={quote(raw)}" + (f"&mcId={quote(mcid)}" if mcid is not None else "")
    response = client.get(f"/r/?{query}")
    assert response.status_code == 200


@FUZZ
@given(
    body=JSON_VALUES
    | st.fixed_dictionaries(
        {
            "integration_key": st.sampled_from([ANDROID_KEY, IOS_KEY]) | JSON_VALUES,
            "token": st.text(max_size=80) | JSON_VALUES,
        },
        optional={"user_key": JSON_VALUES, "device": JSON_VALUES, "params": JSON_VALUES},
    ),
    method=st.sampled_from(["POST", "DELETE"]),
    content_type=CONTENT_TYPES,
)
def test_native_registration_fuzz(app: Flask, client: FlaskClient, ids, body, method, content_type) -> None:
    before = snapshot(app)
    response = client.open("/api/v1/subscriptions", method=method, data=json.dumps(body), content_type=content_type)
    check(app, response, before)


def test_oversized_bodies_are_413_on_every_public_endpoint(app: Flask, client: FlaskClient, ids) -> None:
    huge = b"x" * (65 * 1024)
    for path, ctype in [
        ("/nms/mobile/1/registerAndroid.jssp", "application/x-www-form-urlencoded"),
        (f"/ee/v1/interact?configId={ids['edge_config']}", "application/json"),
        (f"/rest/head/mobileAppV5/{ids['pkey']}/subscriptions/123", "application/json"),
        ("/api/v1/subscriptions", "application/json"),
    ]:
        response = client.post(path, data=huge, content_type=ctype)
        assert response.status_code == 413, path
        assert response.json["error"] == "payload_too_large"


@pytest.mark.parametrize("bad", ["\\ud800", "\\u0000", "a\\u0000b"])
def test_unstorable_json_strings_are_refused_everywhere(app: Flask, client: FlaskClient, ids, bad: str) -> None:
    """Lone surrogates and NUL survive json.loads but not the database: they must be 4xx, not 5xx."""
    before = snapshot(app)
    ecid = ECID
    detail = '{"appID": "%s", "token": "%s", "platform": "fcm", "identity": {"id": "%s"}}'
    bodies = [
        (
            "/ee/v1/interact?configId=" + ids["edge_config"],
            '{"events": [{"data": {"pushNotificationDetails": ['
            + detail % (ids["package"], "tok" + bad, ecid)
            + "]}}]}",
        ),
        (
            "/ee/v1/interact?configId=" + ids["edge_config"],
            '{"events": [{"data": {"pushNotificationDetails": [' + detail % (ids["package"], "tok-1", bad) + "]}}]}",
        ),
        (
            "/ee/v1/interact?configId=" + ids["edge_config"],
            '{"xdm": {"identityMap": {"ECID": [{"id": "' + bad + '"}]}}, "events": [{"xdm": {"eventType": '
            '"pushTracking.customAction", "pushNotificationTracking": {"pushProviderMessageID": "' + bad + '", '
            '"customAction": {"actionID": "' + bad + '"}}}}]}',
        ),
        (
            f"/rest/head/mobileAppV5/{ids['pkey']}/subscriptions/{ecid}",
            '{"pushPlatform": "gcm", "marketingCloudId": "' + bad + '"}',
        ),
        (
            "/api/v1/subscriptions",
            '{"integration_key": "' + ids["android_key"] + '", "token": "tok-1", "user_key": "' + bad + '"}',
        ),
        (
            "/api/v1/subscriptions",
            '{"integration_key": "' + ids["android_key"] + '", "token": "tok-1", "params": {"k": "' + bad + '"}}',
        ),
    ]
    for path, body in bodies:
        response = client.post(path, data=body.encode(), content_type="application/json")
        assert response.status_code < 500, (path, body, response.data)
    assert snapshot(app) == before
