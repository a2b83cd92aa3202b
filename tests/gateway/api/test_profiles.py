"""/api/v1/profiles: upsert by external id, validation, linking, listing and erasure."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.api.schemas import ProfileOut
from gateway.runtime import runtime
from store.models import Audience, AudienceMember, BroadLog, Profile, Subscription, TrackingLog
from tests.factories import make_app, make_profile, make_sent_message
from tests.gateway.api.helpers import walk
from tests.values import FCM_TOKEN, fcm_token

FULL = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "locale": "en-GB",
    "timezone": "Europe/London",
    "attributes": {"tier": "gold", "points": 12, "tags": ["a", "b"]},
    "push_consent": "y",
}


def put(client: FlaskClient, keys: Any, external_id: str, body: dict[str, Any]) -> Any:
    return client.put(f"/api/v1/profiles/{external_id}", json=body, headers=keys.marketer)


def test_put_creates_then_updates_keeping_omitted_fields(client: FlaskClient, keys: Any) -> None:
    first = put(client, keys, "cust-1", FULL)
    assert first.status_code == 201, first.json
    assert first.headers["Location"] == "/api/v1/profiles/cust-1"
    profile = ProfileOut.model_validate(first.json)
    assert {k: getattr(profile, k) for k in FULL} == FULL
    assert (profile.subscription_count, profile.subscription_ids) == (0, [])

    second = put(client, keys, "cust-1", {"first_name": "Augusta", "email": None, "attributes": {}})
    assert second.status_code == 200
    assert second.json["first_name"] == "Augusta" and second.json["email"] is None
    assert second.json["attributes"] == {}
    assert (second.json["last_name"], second.json["timezone"], second.json["push_consent"]) == (
        "Lovelace",
        "Europe/London",
        "y",
    )
    assert second.json["id"] == profile.id
    assert client.get("/api/v1/profiles/cust-1", headers=keys.viewer).json == second.json


def test_put_with_an_empty_body_object_creates_defaults(client: FlaskClient, keys: Any) -> None:
    response = put(client, keys, "bare", {})
    assert response.status_code == 201
    assert response.json["push_consent"] == "u" and response.json["attributes"] == {}


def test_external_ids_with_slashes_and_unicode(client: FlaskClient, keys: Any) -> None:
    for external_id, path in [("a/b", "a/b"), ("zoë 1", "zo%C3%AB%201")]:
        assert put(client, keys, path, {}).status_code == 201
        fetched = client.get(f"/api/v1/profiles/{path}", headers=keys.viewer)
        assert fetched.json["external_id"] == external_id


def test_locale_is_normalised(client: FlaskClient, keys: Any) -> None:
    assert put(client, keys, "p", {"locale": "zh_hans_cn"}).json["locale"] == "zh-Hans-CN"
    assert put(client, keys, "p", {"locale": "fr"}).json["locale"] == "fr"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": "a b@example.com"}, "email"),
        ({"locale": "english"}, "locale"),
        ({"locale": "en-USA-x"}, "locale"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": "europe/paris"}, "timezone"),
        ({"attributes": ["a"]}, "attributes"),
        ({"attributes": None}, "attributes"),
        ({"attributes": {"big": "x" * 17000}}, "attributes"),
        ({"attributes": {"nul": "a\u0000b"}}, "attributes"),
        ({"push_consent": "yes"}, "push_consent"),
        ({"push_consent": None}, "push_consent"),
        ({"first_name": "x" * 201}, "first_name"),
        ({"first_name": "A\u0000"}, "first_name"),
        ({"last_name": "\ud83d"}, "last_name"),
        ({"nickname": "Ada"}, "nickname"),
    ],
)
def test_invalid_fields_are_400(client: FlaskClient, keys: Any, body: dict[str, Any], field: str) -> None:
    response = put(client, keys, "cust-1", body)
    assert response.status_code == 400, response.json
    assert response.json["message"].startswith(f"invalid field {field}")
    assert client.get("/api/v1/profiles/cust-1", headers=keys.viewer).status_code == 404


def test_non_finite_numbers_in_attributes_are_400(client: FlaskClient, keys: Any) -> None:
    response = client.put(
        "/api/v1/profiles/p",
        data='{"attributes": {"x": NaN}}',
        headers={**keys.marketer, "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and "finite" in response.json["message"]


@pytest.mark.parametrize("path", ["x" * 256, "%00", "a%01b", "%20%20"])
def test_invalid_external_ids_are_400(client: FlaskClient, keys: Any, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.open(f"/api/v1/profiles/{path}", method=method, json={}, headers=keys.marketer)
        assert response.status_code == 400, (method, response.json)
        assert response.json["error"] == "invalid_external_id"


def test_unknown_profiles_are_404(client: FlaskClient, keys: Any) -> None:
    assert client.get("/api/v1/profiles/nobody", headers=keys.viewer).status_code == 404
    assert client.delete("/api/v1/profiles/nobody", headers=keys.marketer).status_code == 404


def test_upsert_links_earlier_subscriptions(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = make_app(app)
    registration = {"integration_key": ids["android_key"], "token": FCM_TOKEN, "user_key": "cust-7"}
    sub = client.post("/api/v1/subscriptions", json=registration).json
    assert client.get(f"/api/v1/subscriptions/{sub['id']}", headers=keys.viewer).json["profile"] is None

    profile = put(client, keys, "cust-7", {"email": "c7@example.com"}).json
    assert profile["subscription_ids"] == [sub["id"]] and profile["subscription_count"] == 1
    linked = client.get(f"/api/v1/subscriptions/{sub['id']}", headers=keys.viewer).json
    assert linked["profile"] == {"id": profile["id"], "external_id": "cust-7"}


def test_list_filters_by_email_and_walks_every_page(app: Flask, client: FlaskClient, keys: Any) -> None:
    for n in range(5):
        make_profile(app, f"p{n}", email="shared@example.com" if n % 2 == 0 else f"p{n}@example.com")
    pages = walk(client, "/api/v1/profiles", keys.viewer, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [p["external_id"] for page in pages for p in page] == [f"p{n}" for n in range(5)]
    shared = walk(client, "/api/v1/profiles?email=shared@example.com", keys.viewer, limit=2)
    assert [p["external_id"] for page in shared for p in page] == ["p0", "p2", "p4"]
    for page in pages:
        for item in page:
            ProfileOut.model_validate(item)
    assert client.get("/api/v1/profiles?email=a%00b", headers=keys.viewer).status_code == 400
    assert client.get("/api/v1/profiles?email=nobody@example.com", headers=keys.viewer).json == {
        "items": [],
        "next_cursor": None,
    }


def test_erasure_removes_the_person_and_keeps_anonymous_history(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = make_app(app)
    put(client, keys, "erase-me", {"email": "e@example.com", "first_name": "Eve"})
    put(client, keys, "keep-me", {"email": "k@example.com"})
    mine = client.post(
        "/api/v1/subscriptions",
        json={"integration_key": ids["android_key"], "token": fcm_token("mine"), "user_key": "erase-me"},
    ).json
    theirs = client.post(
        "/api/v1/subscriptions",
        json={"integration_key": ids["android_key"], "token": fcm_token("theirs"), "user_key": "keep-me"},
    ).json
    broadlog_id, delivery_id = make_sent_message(app, ids["id"], subscription_id=mine["id"])
    other_broadlog, _ = make_sent_message(app, ids["id"], subscription_id=theirs["id"])
    with app.app_context(), runtime().sessions.begin() as session:
        profile_ids = {p.external_id: p.id for p in session.scalars(select(Profile))}
        session.get_one(BroadLog, broadlog_id).profile_id = profile_ids["erase-me"]
        session.get_one(BroadLog, other_broadlog).profile_id = profile_ids["keep-me"]
        session.add_all(
            [
                TrackingLog(
                    broadlog_id=broadlog_id,
                    delivery_id=delivery_id,
                    profile_id=profile_ids["erase-me"],
                    interaction="opened",
                    source="edge",
                    ecid="12345678901234567890123456789012345678",
                ),
                TrackingLog(
                    broadlog_id=other_broadlog,
                    delivery_id=delivery_id,
                    profile_id=profile_ids["keep-me"],
                    interaction="opened",
                    source="edge",
                    ecid="99999999999999999999999999999999999999",
                ),
            ]
        )
        audience = Audience(name="VIP")
        session.add(audience)
        session.flush()
        session.add_all(
            [AudienceMember(audience_id=audience.id, profile_id=pid, status="realized") for pid in profile_ids.values()]
        )

    assert client.delete("/api/v1/profiles/erase-me", headers=keys.marketer).status_code == 204

    assert client.get("/api/v1/profiles/erase-me", headers=keys.viewer).status_code == 404
    # The person's subscription is gone with its token and device data; the other one is untouched.
    assert client.get(f"/api/v1/subscriptions/{mine['id']}", headers=keys.viewer).status_code == 404
    kept = client.get(f"/api/v1/subscriptions/{theirs['id']}", headers=keys.viewer).json
    assert kept["user_key"] == "keep-me" and kept["profile"]["external_id"] == "keep-me"
    with app.app_context(), runtime().sessions() as session:
        broadlogs = {b.id: (b.profile_id, b.subscription_id) for b in session.scalars(select(BroadLog))}
        assert broadlogs == {broadlog_id: (None, None), other_broadlog: (profile_ids["keep-me"], theirs["id"])}
        tracking = {t.broadlog_id: (t.profile_id, t.ecid) for t in session.scalars(select(TrackingLog))}
        assert tracking == {
            broadlog_id: (None, None),
            other_broadlog: (profile_ids["keep-me"], "99999999999999999999999999999999999999"),
        }
        members = [m.profile_id for m in session.scalars(select(AudienceMember))]
        assert members == [profile_ids["keep-me"]]
        assert session.scalar(select(Audience.name)) == "VIP"
        assert [s.id for s in session.scalars(select(Subscription).order_by(Subscription.id))] == [theirs["id"]]
