"""GET /api/v1/apps/{id}/sdk-config: roles, the document, and every refusal as a clear 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.api.sdk_config import SdkConfigOut
from gateway.app import create_app
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.gateway.api.helpers import app_body
from tests.values import EDGE_CONFIG, PKEY

URL = "/api/v1/apps/{}/sdk-config"


def get(client: FlaskClient, headers: dict[str, str], app_id: int, **params: str) -> Any:
    return client.get(URL.format(app_id), query_string=params, headers=headers)


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_admins_and_marketers_get_the_configuration(app: Flask, client: FlaskClient, keys: Any, role: str) -> None:
    created = client.post("/api/v1/apps", json=app_body(edge_config_id=EDGE_CONFIG), headers=keys.admin).json
    response = get(client, keys(role), created["id"], platform="ios", sdk="edge")
    assert response.status_code == 200, response.json
    document = SdkConfigOut.model_validate(response.json)
    assert document.app_id == created["id"] and document.public_url == "https://push.example.test"
    assert document.configuration is not None
    assert document.configuration["edge.domain"] == "push.example.test"
    assert document.configuration["edge.configId"] == EDGE_CONFIG
    assert document.configuration["messaging.useSandbox"] is True  # the body's APNs key is for the sandbox
    assert list(document.snippets) == ["swift"]

    classic = get(client, keys(role), created["id"], platform="android", sdk="campaign-classic").json
    assert classic["configuration"]["campaignclassic.android.integrationKey"] == created["android"]["integration_key"]
    assert classic["legacy"]["integration_key"] == created["android"]["integration_key"]
    assert list(classic["snippets"]) == ["kotlin"]


def test_viewers_and_strangers_are_refused(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = make_app(app)
    assert get(client, keys.viewer, ids["id"], platform="ios", sdk="edge").status_code == 403
    assert get(client, {}, ids["id"], platform="ios", sdk="edge").status_code == 401


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sdk": "edge"}, "query parameter platform must be one of ios, android (got missing)"),
        (
            {"platform": "windows", "sdk": "edge"},
            "query parameter platform must be one of ios, android (got 'windows')",
        ),
        ({"platform": "ios"}, "query parameter sdk must be one of campaign-classic, campaign-standard, edge, native"),
        ({"platform": "ios", "sdk": "Edge"}, "query parameter sdk must be one of"),
    ],
)
def test_bad_choices_are_400(app: Flask, client: FlaskClient, keys: Any, params: dict[str, str], message: str) -> None:
    ids = make_app(app)
    response = get(client, keys.marketer, ids["id"], **params)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_query" and response.json["message"].startswith(message)


def test_an_unknown_app_is_404(app: Flask, client: FlaskClient, keys: Any) -> None:
    response = get(client, keys.marketer, 999999, platform="ios", sdk="edge")
    assert response.status_code == 404 and response.json["message"] == "no app with id 999999"


def test_an_app_without_what_the_sdk_needs_is_409(app: Flask, client: FlaskClient, keys: Any) -> None:
    body = app_body()
    del body["ios"]
    created = client.post("/api/v1/apps", json=body, headers=keys.admin).json
    response = get(client, keys.marketer, created["id"], platform="ios", sdk="native")
    assert response.status_code == 409 and response.json["error"] == "platform_missing"
    assert "has no ios part" in response.json["message"]
    for sdk, field in (("campaign-standard", "campaign_standard_pkey"), ("edge", "edge_config_id")):
        response = get(client, keys.marketer, created["id"], platform="android", sdk=sdk)
        assert response.status_code == 409 and response.json["error"] == "app_not_configured"
        assert f"has no {field}" in response.json["message"]
    patched = client.patch(f"/api/v1/apps/{created['id']}", json={"campaign_standard_pkey": PKEY}, headers=keys.admin)
    assert patched.status_code == 200, patched.json
    response = get(client, keys.marketer, created["id"], platform="android", sdk="campaign-standard")
    assert response.status_code == 409 and "has no experience_cloud_org" in response.json["message"]
    assert "never sends the push token" in response.json["message"]


@pytest.fixture
def no_public_url(settings_overrides: dict[str, Any], app: Flask) -> Iterator[FlaskClient]:
    """A second gateway on the same database, without PUSHGATE_PUBLIC_URL (``app`` empties the tables)."""
    other = create_app(overrides={**settings_overrides, "public_url": ""})
    other.config["TESTING"] = True
    yield other.test_client()
    runtime_of(other).engine.dispose()


def test_a_missing_public_url_is_a_clear_409(app: Flask, keys: Any, no_public_url: FlaskClient) -> None:
    ids = make_app(app)
    for sdk in ("campaign-classic", "campaign-standard", "edge", "native"):
        response = get(no_public_url, keys.admin, ids["id"], platform="android", sdk=sdk)
        assert response.status_code == 409, response.json
        assert response.json["error"] == "public_url_not_set"
        assert response.json["message"].startswith("PUSHGATE_PUBLIC_URL is not set")


def test_the_route_is_documented(client: FlaskClient) -> None:
    op = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/apps/{app_id}/sdk-config"]["get"]
    assert op["x-required-role"] == "marketer"
    assert {p["name"] for p in op["parameters"]} == {"app_id", "platform", "sdk"}
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SdkConfigOut")
