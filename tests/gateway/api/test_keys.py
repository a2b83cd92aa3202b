"""/api/v1/keys, and the role matrix of every authenticated /api/v1 route."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from domain.keys import ROLES
from gateway.api.schemas import ApiKeyCreated, ApiKeyOut
from tests.gateway.api.helpers import walk


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_create_shows_the_key_once_and_it_works(client: FlaskClient, keys: Any) -> None:
    response = client.post("/api/v1/keys", json={"name": "backend", "role": "marketer"}, headers=keys.admin)
    assert response.status_code == 201
    created = ApiKeyCreated.model_validate(response.json)
    assert created.key.startswith(created.prefix + "_") and created.revoked_at is None
    assert client.put("/api/v1/profiles/p1", json={}, headers=bearer(created.key)).status_code == 201
    assert client.post("/api/v1/apps", json={}, headers=bearer(created.key)).status_code == 403

    listed = [k for page in walk(client, "/api/v1/keys", keys.admin, limit=2) for k in page]
    assert [k["name"] for k in listed] == ["test admin", "test marketer", "test viewer", "backend"]
    for item in listed:
        ApiKeyOut.model_validate(item)
    assert created.key not in client.get("/api/v1/keys", headers=keys.admin).get_data(as_text=True)


def test_revoke(client: FlaskClient, keys: Any) -> None:
    created = client.post("/api/v1/keys", json={"name": "temp", "role": "viewer"}, headers=keys.admin).json
    assert client.get("/api/v1/apps", headers=bearer(created["key"])).status_code == 200
    assert client.delete(f"/api/v1/keys/{created['id']}", headers=keys.admin).status_code == 204
    assert client.delete(f"/api/v1/keys/{created['id']}", headers=keys.admin).status_code == 204  # already
    refused = client.get("/api/v1/apps", headers=bearer(created["key"]))
    assert refused.status_code == 401 and refused.json["error"] == "unauthorized"
    live = client.get("/api/v1/keys", headers=keys.admin).json["items"]
    assert created["id"] not in [k["id"] for k in live]
    every = client.get("/api/v1/keys?include_revoked=true", headers=keys.admin).json["items"]
    assert next(k for k in every if k["id"] == created["id"])["revoked_at"] is not None
    assert client.delete("/api/v1/keys/424242", headers=keys.admin).status_code == 404
    assert client.delete("/api/v1/keys/99999999999999999999", headers=keys.admin).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "role": "root"},
        {"name": "", "role": "viewer"},
        {"role": "viewer"},
        {"name": "x" * 201, "role": "admin"},
        {"name": "a\u0000", "role": "admin"},
        {"name": "x", "role": "viewer", "scope": "all"},
    ],
)
def test_invalid_key_requests_are_400(client: FlaskClient, keys: Any, body: dict[str, Any]) -> None:
    response = client.post("/api/v1/keys", json=body, headers=keys.admin)
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def _routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, sample URL, required role) of every authenticated /api/v1 route."""
    found = []
    for rule in app.url_map.iter_rules():
        role = getattr(app.view_functions[rule.endpoint], "required_role", None)
        if not rule.rule.startswith("/api/v1") or role is None:
            continue
        url = re.sub(r"<int:\w+>", "1", rule.rule)
        url = re.sub(r"<(?:\w+:)?\w+>", "someone", url)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, url, role))
    return found


def test_role_matrix_covers_every_authenticated_route(app: Flask, client: FlaskClient, keys: Any) -> None:
    revoked = client.post("/api/v1/keys", json={"name": "old", "role": "admin"}, headers=keys.admin).json
    client.delete(f"/api/v1/keys/{revoked['id']}", headers=keys.admin)
    unknown = "pgk_0123456789ab_" + "x" * 43
    routes = _routes(app)
    assert len(routes) >= 14
    for method, url, needed in routes:
        for headers in (
            {},
            {"Authorization": "Basic abc"},
            {"Authorization": "Bearer "},
            bearer("nonsense"),
            bearer(unknown),
            bearer(revoked["key"]),
        ):
            response = client.open(url, method=method, json={}, headers=headers)
            assert response.status_code == 401, (method, url, headers)
            assert response.json["error"] == "unauthorized"
        for role in ROLES:
            response = client.open(url, method=method, json={}, headers=keys(role))
            allowed = ROLES.index(role) >= ROLES.index(needed)
            if allowed:
                assert response.status_code not in (401, 403), (method, url, role)
            else:
                assert response.status_code == 403, (method, url, role)
                assert needed in response.json["message"]


def test_the_roles_of_the_issue(client: FlaskClient, keys: Any) -> None:
    """admin manages apps and keys; marketer manages profiles; viewer reads."""
    app_body = {"name": "A", "android": {"package_name": "a.b"}}
    assert client.post("/api/v1/apps", json=app_body, headers=keys.marketer).status_code == 403
    assert client.post("/api/v1/keys", json={"name": "x", "role": "admin"}, headers=keys.marketer).status_code == 403
    assert client.get("/api/v1/keys", headers=keys.viewer).status_code == 403
    assert client.put("/api/v1/profiles/p", json={}, headers=keys.viewer).status_code == 403
    assert client.delete("/api/v1/profiles/p", headers=keys.viewer).status_code == 403
    assert client.put("/api/v1/profiles/p", json={}, headers=keys.marketer).status_code == 201
    assert client.post("/api/v1/apps", json=app_body, headers=keys.admin).status_code == 201
    assert client.get("/api/v1/apps", headers=keys.viewer).status_code == 200
    assert client.get("/api/v1/profiles/p", headers=keys.viewer).status_code == 200
