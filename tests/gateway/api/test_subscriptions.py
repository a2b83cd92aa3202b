"""Native registration (public, by integration key) and the subscriptions read API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from core.metrics import REGISTRATIONS
from gateway.api.schemas import SubscriptionOut
from gateway.runtime import runtime
from store.models import Subscription
from tests.factories import make_app, make_profile
from tests.gateway.api.helpers import walk
from tests.values import ANDROID_KEY, APNS_TOKEN, FCM_TOKEN, IOS_KEY, apns_token, fcm_token


@pytest.fixture
def ids(app: Flask) -> dict[str, Any]:
    return make_app(app)


def register(client: FlaskClient, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/subscriptions", json=body)


def stored(client: FlaskClient, keys: Any, response: Any) -> Any:
    """The stored view of the subscription a registration answered for (read with an API key: the
    public answer says only that the token is registered)."""
    assert response.json == {"id": response.json["id"], "status": "registered"}, response.json
    return client.get(f"/api/v1/subscriptions/{response.json['id']}", headers=keys.viewer).json


def count(app: Flask) -> int:
    with app.app_context(), runtime().sessions() as session:
        return len(session.scalars(select(Subscription)).all())


def registrations(platform: str, outcome: str) -> float:
    value = REGISTRATIONS.labels("native", platform, outcome)._value.get()
    return float(value)


def test_native_registration_is_idempotent(app: Flask, client: FlaskClient, keys: Any, ids: dict[str, Any]) -> None:
    body = {
        "integration_key": ids["android_key"],
        "token": FCM_TOKEN,
        "user_key": "cust-1",
        "device": {
            "imei": "356938035643809",
            "name": "Pixel",
            "model": "Pixel 8",
            "brand": "google",
            "manufacturer": "Google",
            "os_name": "Android",
            "os_version": "14",
            "os_language": "fr-FR",
        },
        "params": {"plan": "pro", "visits": 3, "beta": True, "ratio": 0.5},
    }
    created_before, updated_before = registrations("android", "created"), registrations("android", "updated")

    first = register(client, body)
    first_view = stored(client, keys, first)
    second = register(client, body)

    assert (first.status_code, second.status_code) == (201, 200)
    assert count(app) == 1
    sub = SubscriptionOut.model_validate(first_view)
    assert second.json == {"id": sub.id, "status": "registered"}
    assert (sub.app_id, sub.platform, sub.sdk, sub.push_provider) == (ids["id"], "android", "native", "fcm")
    assert (sub.token, sub.user_key, sub.profile) == (FCM_TOKEN, "cust-1", None)
    assert first_view["device"] == {
        "device_imei": "356938035643809",
        "device_name": "Pixel",
        "device_model": "Pixel 8",
        "device_brand": "google",
        "device_manufacturer": "Google",
        "os_name": "Android",
        "os_version": "14",
        "os_language": "fr-FR",
    }
    assert sub.additional_params == {"plan": "pro", "visits": 3, "beta": True, "ratio": 0.5}
    assert {k: v for k, v in stored(client, keys, second).items() if k != "last_registered_at"} == {
        k: v for k, v in first_view.items() if k != "last_registered_at"
    }
    assert registrations("android", "created") == created_before + 1
    assert registrations("android", "updated") == updated_before + 1


def test_ios_tokens_are_one_subscription_whatever_their_form(
    app: Flask, client: FlaskClient, keys: Any, ids: dict[str, Any]
) -> None:
    spaced = "<" + " ".join(APNS_TOKEN.upper()[i : i + 8] for i in range(0, 64, 8)) + ">"
    first = register(client, {"integration_key": ids["ios_key"], "token": APNS_TOKEN.upper()})
    second = register(client, {"integration_key": ids["ios_key"], "token": spaced})
    assert (first.status_code, second.status_code) == (201, 200)
    view = stored(client, keys, first)
    assert view["token"] == APNS_TOKEN and view["push_provider"] == "apns"
    assert view["platform"] == "ios" and count(app) == 1


def test_device_fields_omitted_are_kept_and_user_key_follows_each_call(
    app: Flask, client: FlaskClient, keys: Any, ids: dict[str, Any]
) -> None:
    make_profile(app, "cust-2")
    key = ids["android_key"]
    register(
        client,
        {
            "integration_key": key,
            "token": FCM_TOKEN,
            "user_key": "cust-2",
            "device": {"name": "Old", "model": "M1"},
            "params": {"a": 1},
        },
    )
    again = stored(
        client,
        keys,
        register(client, {"integration_key": key, "token": FCM_TOKEN, "user_key": "cust-2", "device": {"name": "New"}}),
    )
    assert again["device"]["device_name"] == "New" and again["device"]["device_model"] == "M1"
    assert again["additional_params"] == {"a": 1}
    assert again["profile"]["external_id"] == "cust-2"
    logged_out = stored(client, keys, register(client, {"integration_key": key, "token": FCM_TOKEN}))
    assert logged_out["user_key"] is None and logged_out["profile"] is None


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"integration_key": "no-such-key", "token": "t"}, 404, "unknown_integration_key"),
        ({"integration_key": "not a key / at all", "token": "t"}, 404, "unknown_integration_key"),
        ({"integration_key": "k" * 201, "token": "t"}, 400, "invalid_request"),
        ({"integration_key": ANDROID_KEY, "token": "bad token!"}, 400, "invalid_token"),
        ({"integration_key": IOS_KEY, "token": "not-hex"}, 400, "invalid_token"),
        ({"integration_key": ANDROID_KEY, "token": ""}, 400, "invalid_request"),
        ({"integration_key": ANDROID_KEY}, 400, "invalid_request"),
        (
            {"integration_key": ANDROID_KEY, "token": FCM_TOKEN, "params": {"a": {"b": 1}}},
            400,
            "invalid_request",
        ),
        (
            {"integration_key": ANDROID_KEY, "token": FCM_TOKEN, "params": {"a": None}},
            400,
            "invalid_request",
        ),
        (
            {"integration_key": ANDROID_KEY, "token": FCM_TOKEN, "params": {"a": "\u0000"}},
            400,
            "invalid_request",
        ),
        (
            {"integration_key": ANDROID_KEY, "token": FCM_TOKEN, "user_key": "a\u0000"},
            400,
            "invalid_request",
        ),
        (
            {"integration_key": ANDROID_KEY, "token": FCM_TOKEN, "user_key": "u" * 256},
            400,
            "invalid_request",
        ),
        (
            {"integration_key": ANDROID_KEY, "token": FCM_TOKEN, "device": {"colour": "red"}},
            400,
            "invalid_request",
        ),
        (
            {"integration_key": ANDROID_KEY, "token": FCM_TOKEN, "device": {"name": "\ud800"}},
            400,
            "invalid_request",
        ),
        ({"integration_key": "k\u0000", "token": "t"}, 400, "invalid_request"),
    ],
)
def test_bad_registrations_are_refused(
    app: Flask, client: FlaskClient, ids: dict[str, Any], body: dict[str, Any], status: int, code: str
) -> None:
    response = register(client, body)
    assert response.status_code == status, response.json
    assert response.json["error"] == code
    assert count(app) == 0


def test_public_endpoints_use_the_public_body_limit(client: FlaskClient, ids: dict[str, Any]) -> None:
    # ~70 KiB: over the public limit (64 KiB), well under the API limit (1 MiB)
    body = {
        "integration_key": ids["android_key"],
        "token": FCM_TOKEN,
        "params": {f"p{n}": "x" * 1000 for n in range(70)},
    }
    for method in ("POST", "DELETE"):
        response = client.open(
            "/api/v1/subscriptions", method=method, data=json.dumps(body), content_type="application/json"
        )
        assert response.status_code == 413, method
        assert response.json["error"] == "payload_too_large"


def test_params_limits(client: FlaskClient, ids: dict[str, Any]) -> None:
    many = {f"p{n}": n for n in range(101)}
    response = register(client, {"integration_key": ids["android_key"], "token": FCM_TOKEN, "params": many})
    assert response.status_code == 400 and "100" in response.json["message"]


def test_unregister(app: Flask, client: FlaskClient, ids: dict[str, Any]) -> None:
    register(client, {"integration_key": ids["ios_key"], "token": APNS_TOKEN})
    body = {"integration_key": ids["ios_key"], "token": APNS_TOKEN.upper()}
    assert client.delete("/api/v1/subscriptions", json=body).status_code == 204
    assert count(app) == 0
    again = client.delete("/api/v1/subscriptions", json=body)
    assert again.status_code == 404 and again.json["error"] == "unknown_subscription"
    unknown = client.delete("/api/v1/subscriptions", json={"integration_key": "nope", "token": APNS_TOKEN})
    assert unknown.status_code == 404 and unknown.json["error"] == "unknown_integration_key"


def test_registration_needs_no_api_key_but_reading_does(client: FlaskClient, keys: Any, ids: dict[str, Any]) -> None:
    sub = register(client, {"integration_key": ids["android_key"], "token": FCM_TOKEN}).json
    assert client.get(f"/api/v1/subscriptions/{sub['id']}").status_code == 401
    fetched = client.get(f"/api/v1/subscriptions/{sub['id']}", headers=keys.viewer)
    assert fetched.status_code == 200 and fetched.json["id"] == sub["id"] and fetched.json["token"] == FCM_TOKEN
    assert client.get("/api/v1/subscriptions/999999", headers=keys.viewer).status_code == 404
    assert client.get("/api/v1/subscriptions/99999999999999999999", headers=keys.viewer).status_code == 404


def test_list_filters_and_pages(app: Flask, client: FlaskClient, keys: Any, ids: dict[str, Any]) -> None:
    other = make_app(app, suffix="-other")
    register(client, {"integration_key": other["android_key"], "token": fcm_token("elsewhere")})
    made = []
    for n in range(5):
        made.append(
            register(
                client,
                {"integration_key": ids["android_key"], "token": fcm_token(n), "user_key": "u1" if n < 2 else None},
            ).json["id"]
        )
    for n in range(3):
        made.append(register(client, {"integration_key": ids["ios_key"], "token": apns_token(n)}).json["id"])
    with app.app_context(), runtime().sessions.begin() as session:
        session.execute(update(Subscription).where(Subscription.id == made[0]).values(disabled=True))

    url = f"/api/v1/apps/{ids['id']}/subscriptions"
    pages = walk(client, url, keys.viewer, limit=3)
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [s["id"] for page in pages for s in page] == made
    for page in pages:
        for item in page:
            SubscriptionOut.model_validate(item)

    def ids_of(query: str) -> list[int]:
        return [s["id"] for page in walk(client, f"{url}?{query}", keys.viewer, limit=50) for s in page]

    assert ids_of("platform=ios") == made[5:]
    assert ids_of("platform=android&user_key=u1") == made[:2]
    assert ids_of("disabled=true") == made[:1]
    assert ids_of("disabled=false&platform=android") == made[1:5]
    for query in ("platform=windows", "disabled=maybe", "limit=-1", "user_key=a%00"):
        assert client.get(f"{url}?{query}", headers=keys.viewer).status_code == 400, query
    assert client.get("/api/v1/apps/424242/subscriptions", headers=keys.viewer).status_code == 404


def test_device_names_are_the_same_in_and_out(client: FlaskClient, keys: Any, ids: dict[str, Any]) -> None:
    """A client can send back the device it read; the short names of old clients still work."""
    token = fcm_token("device-2")
    first = register(
        client,
        {"integration_key": ids["android_key"], "token": token, "device": {"name": "oriole", "model": "Pixel 6"}},
    )
    assert first.status_code == 201
    read = stored(client, keys, first)["device"]
    read["os_version"] = "Android 15"
    again = register(client, {"integration_key": ids["android_key"], "token": token, "device": read})
    assert again.status_code == 200, again.json
    assert stored(client, keys, again)["device"] == read
    both = register(
        client,
        {"integration_key": ids["android_key"], "token": token, "device": {"name": "a", "device_name": "b"}},
    )
    assert both.status_code == 400 and "give name or device_name, not both" in both.json["message"]
