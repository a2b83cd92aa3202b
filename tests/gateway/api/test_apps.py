"""/api/v1/apps: creation, validation, uniqueness, pagination, change, removal (credentials: own file)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.api.schemas import AppOut
from gateway.runtime import runtime
from store.models import AppPlatform, Subscription
from tests.factories import identifiers, make_app, make_sent_message
from tests.gateway.api.helpers import apns_certificate, app_body, secrets_of, token_apns, walk
from tests.values import (
    EDGE_CONFIG,
    EDGE_CONFIG_DEV,
    FCM_TOKEN,
    IOS_KEY,
    IOS_KEY_WORDS,
    ORG,
    PKEY,
    PKEY_2,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def create(client: FlaskClient, keys: Any, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/apps", json=body, headers=keys.admin)


def test_create_generates_keys_and_shows_only_public_credentials(client: FlaskClient, keys: Any) -> None:
    body = app_body(campaign_standard_pkey=PKEY, edge_config_id=EDGE_CONFIG, experience_cloud_org=ORG)
    response = create(client, keys, body)

    assert response.status_code == 201, response.json
    app = AppOut.model_validate(response.json)
    assert response.headers["Location"] == f"/api/v1/apps/{app.id}"
    assert app.ios is not None and app.android is not None
    assert UUID.match(app.ios.integration_key) and UUID.match(app.android.integration_key)
    assert app.ios.integration_key != app.android.integration_key
    assert response.json["ios"]["apns"] == {
        "auth": "token",
        "key_id": "ABC123DEFG",
        "team_id": "TEAM123456",
        "environment": "sandbox",
    }
    assert response.json["android"]["fcm"] == {
        "project_id": "demo-project",
        "client_email": "firebase-adminsdk@demo-project.iam.gserviceaccount.com",
    }
    assert (app.campaign_standard_pkey, app.edge_config_id, app.experience_cloud_org) == (PKEY, EDGE_CONFIG, ORG)
    fetched = client.get(f"/api/v1/apps/{app.id}", headers=keys.viewer)
    assert fetched.json == response.json
    for text in (response.get_data(as_text=True), fetched.get_data(as_text=True)):
        for fragment in secrets_of(body):
            assert fragment not in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Shop"}, "(body)"),
        ({"name": "", "android": {"package_name": "com.example.x"}}, "name"),
        ({"name": "Shop", "android": {"package_name": "noDots"}}, "android.package_name"),
        ({"name": "Shop", "ios": {"bundle_id": "com example"}}, "ios.bundle_id"),
        ({"name": "Shop", "ios": {}}, "ios.bundle_id"),
        ({"name": "Shop", "ios": {"bundle_id": "a.b", "integration_key": "has/slash"}}, "ios.integration_key"),
        ({"name": "Shop", "ios": {"bundle_id": "a.b", "integration_key": "tab\there"}}, "ios.integration_key"),
        ({"name": "Shop\u0000", "ios": {"bundle_id": "a.b"}}, "name"),
        ({"name": "Shop\ud800", "ios": {"bundle_id": "a.b"}}, "name"),
        ({"name": "x" * 201, "ios": {"bundle_id": "a.b"}}, "name"),
        ({"name": "Shop", "ios": {"bundle_id": "a.b"}, "colour": "red"}, "colour"),
        ({"name": "Shop", "ios": {"bundle_id": "a.b"}, "campaign_standard_pkey": "a/b"}, "campaign_standard_pkey"),
    ],
)
def test_invalid_bodies_name_the_field(client: FlaskClient, keys: Any, body: dict[str, Any], field: str) -> None:
    response = create(client, keys, body)
    assert response.status_code == 400
    assert response.json["message"].startswith(f"invalid field {field}")


def test_malformed_requests_are_4xx(client: FlaskClient, keys: Any) -> None:
    headers = {**keys.admin, "Content-Type": "application/json"}
    assert client.post("/api/v1/apps", data="{", headers=headers).status_code == 400
    assert client.post("/api/v1/apps", data="[1]", headers=headers).status_code == 400
    assert client.post("/api/v1/apps", data='{"name": ' + "1" * 5000 + "}", headers=headers).status_code == 400
    assert client.post("/api/v1/apps", data="name=x", headers={**keys.admin}).status_code == 415
    assert client.get("/api/v1/apps/99999999999999999999", headers=keys.viewer).status_code == 404
    assert client.get("/api/v1/apps/12345", headers=keys.viewer).json["error"] == "not_found"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"name": "Existing-e"}, "duplicate_name"),
        ({"campaign_standard_pkey": identifiers("-e")["pkey"]}, "duplicate_campaign_standard_pkey"),
        ({"edge_config_id": identifiers("-e")["edge_config"]}, "duplicate_edge_config_id"),
        (
            {"ios": {"bundle_id": "a.b", "integration_key": identifiers("-e")["android_key"]}},
            "duplicate_integration_key",
        ),
        (
            {
                "ios": {"bundle_id": "a.b", "integration_key": "same-key"},
                "android": {"package_name": "a.b", "integration_key": "same-key"},
            },
            "duplicate_integration_key",
        ),
    ],
)
def test_duplicates_are_409(app: Flask, client: FlaskClient, keys: Any, change: dict[str, Any], code: str) -> None:
    make_app(app, name="Existing", suffix="-e")
    body = {"name": "New", "android": {"package_name": "com.example.new"}, **change}
    response = create(client, keys, body)
    assert response.status_code == 409, response.json
    assert response.json["error"] == code
    assert "unique" in response.json["message"] or "different" in response.json["message"]


def test_a_lost_race_is_still_409(app: Flask, client: FlaskClient, keys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """When another request wins between the check and the insert, the database constraint decides."""
    from domain import apps

    make_app(app, name="Existing")
    monkeypatch.setattr(apps, "_check_unique", lambda *args: None)
    response = create(client, keys, {"name": "Existing", "android": {"package_name": "a.b"}})
    assert response.status_code == 409
    assert "retry" in response.json["message"]


def test_pagination_walks_every_app(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = [make_app(app, suffix=f"-{n}")["id"] for n in range(7)]
    pages = walk(client, "/api/v1/apps", keys.viewer, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [a["id"] for page in pages for a in page] == ids
    for page in pages:
        for item in page:
            AppOut.model_validate(item)


def test_pagination_refuses_bad_parameters(client: FlaskClient, keys: Any) -> None:
    for query in ("limit=0", "limit=501", "limit=x", "cursor=nope", "cursor=djE6LTE", "cursor=%00"):
        response = client.get(f"/api/v1/apps?{query}", headers=keys.viewer)
        assert response.status_code == 400, query
        assert response.json["error"] in ("invalid_query", "invalid_cursor")


def test_patch_changes_what_it_names(app: Flask, client: FlaskClient, keys: Any) -> None:
    created = create(client, keys, app_body()).json
    app_id, url = created["id"], f"/api/v1/apps/{created['id']}"

    renamed = client.patch(url, json={"name": "Renamed", "edge_config_id": EDGE_CONFIG_DEV}, headers=keys.admin).json
    assert (renamed["name"], renamed["edge_config_id"]) == ("Renamed", EDGE_CONFIG_DEV)
    assert renamed["ios"] == created["ios"] and renamed["android"] == created["android"]

    cert, key = apns_certificate()
    changed = client.patch(
        url,
        json={"ios": {"apns": {"certificate_pem": cert, "private_key_pem": key, "environment": "production"}}},
        headers=keys.admin,
    ).json
    assert changed["ios"]["apns"]["auth"] == "certificate"
    assert changed["ios"]["bundle_id"] == "com.example.shop"
    assert changed["ios"]["integration_key"] == created["ios"]["integration_key"]

    rotated = client.patch(url, json={"android": {"integration_key": None}}, headers=keys.admin).json
    assert rotated["android"]["integration_key"] != created["android"]["integration_key"]
    assert rotated["android"]["fcm"] == created["android"]["fcm"]

    cleared = client.patch(url, json={"android": {"fcm": None}, "edge_config_id": None}, headers=keys.admin).json
    assert cleared["android"]["fcm"] is None and cleared["edge_config_id"] is None

    removed = client.patch(url, json={"ios": None}, headers=keys.admin)
    assert removed.status_code == 200 and removed.json["ios"] is None
    last = client.patch(url, json={"android": None}, headers=keys.admin)
    assert last.status_code == 409 and last.json["error"] == "platform_required"

    missing = client.patch(url, json={"ios": {"apns": token_apns()}}, headers=keys.admin)
    assert missing.status_code == 400 and "ios.bundle_id" in missing.json["message"]
    added = client.patch(url, json={"ios": {"bundle_id": "com.example.back"}}, headers=keys.admin).json
    assert added["ios"]["bundle_id"] == "com.example.back" and UUID.match(added["ios"]["integration_key"])
    assert added["ios"]["apns"] is None

    assert client.patch(url, json={"name": None}, headers=keys.admin).status_code == 400
    assert client.patch(url, json={}, headers=keys.admin).json["name"] == "Renamed"
    assert client.patch("/api/v1/apps/9999", json={}, headers=keys.admin).status_code == 404
    make_app(app, name="Taken")
    assert client.patch(url, json={"name": "Taken"}, headers=keys.admin).status_code == 409
    assert client.get(url, headers=keys.viewer).json["name"] == "Renamed"
    assert app_id == added["id"]


def test_delete_removes_the_app_and_its_subscriptions(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = make_app(app)
    registered = client.post("/api/v1/subscriptions", json={"integration_key": ids["android_key"], "token": FCM_TOKEN})
    assert registered.status_code == 201
    assert client.delete(f"/api/v1/apps/{ids['id']}", headers=keys.admin).status_code == 204
    assert client.get(f"/api/v1/apps/{ids['id']}", headers=keys.viewer).status_code == 404
    assert client.delete(f"/api/v1/apps/{ids['id']}", headers=keys.admin).status_code == 404
    with app.app_context(), runtime().sessions() as session:
        assert session.scalars(select(Subscription)).all() == []
        assert session.scalars(select(AppPlatform)).all() == []


def test_delete_is_refused_while_deliveries_reference_the_app(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = make_app(app)
    make_sent_message(app, ids["id"])
    response = client.delete(f"/api/v1/apps/{ids['id']}", headers=keys.admin)
    assert response.status_code == 409
    assert response.json["error"] == "app_in_use" and "deliveries" in response.json["message"]
    assert client.get(f"/api/v1/apps/{ids['id']}", headers=keys.viewer).status_code == 200


# What Adobe's products really generate (or operators really type), each of which must be accepted
# (tests/functional/test_real_values.py takes them through the SDK endpoints too).
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("campaign_standard_pkey", PKEY),
        ("campaign_standard_pkey", PKEY_2),
        ("edge_config_id", EDGE_CONFIG),
        ("edge_config_id", EDGE_CONFIG_DEV),
        ("experience_cloud_org", ORG),
        ("ios.integration_key", IOS_KEY),
        ("ios.integration_key", IOS_KEY_WORDS),
    ],
)
def test_real_identifiers_are_accepted_and_kept(client: FlaskClient, keys: Any, field: str, value: str) -> None:
    body: dict[str, Any] = {"name": "Shop", "ios": {"bundle_id": "com.example.shop"}}
    if field.startswith("ios."):
        body["ios"]["integration_key"] = value
    else:
        body[field] = value
    response = create(client, keys, body)
    assert response.status_code == 201, response.json
    shown = response.json["ios"]["integration_key"] if field.startswith("ios.") else response.json[field]
    assert shown == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("@zkJm/ipt", "character '/' at position 6 cannot be routed"),
        ("@zkJm ipt", "character ' ' at position 6 cannot be routed"),
        ("@zkJm\tipt", "character U+0009 at position 6 cannot be routed"),
        ("@zkJm?ipt", "character '?' at position 6 cannot be routed"),
        ("@" + "a" * 255, "at most 255 characters"),
    ],
)
def test_unroutable_pkeys_name_the_character(client: FlaskClient, keys: Any, value: str, problem: str) -> None:
    response = create(client, keys, {"name": "Shop", "ios": {"bundle_id": "a.b"}, "campaign_standard_pkey": value})
    assert response.status_code == 400
    assert response.json["message"].startswith("invalid field campaign_standard_pkey: ")
    assert problem in response.json["message"]
