"""Issue 14, item 7: an API key limited to some apps reaches nothing of the others.

Before the fix every key reached every app: an agency given a marketer key for one client's app
could read and send to every other client's devices.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask

from domain.quarantine import record_hard_error
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app, make_sent_message
from tests.values import crm_id, fcm_token


@pytest.fixture
def world(app: Flask, keys: Any) -> dict[str, Any]:
    mine, theirs = make_app(app, name="Client A"), make_app(app, name="Client B", suffix="-b")
    found: dict[str, Any] = {"mine": mine, "theirs": theirs}
    for side, ids in (("mine", mine), ("theirs", theirs)):
        token = fcm_token(side)
        with runtime_of(app).sessions.begin() as session:
            record_hard_error(
                session,
                app_id=ids["id"],
                platform="android",
                token=token,
                reason=1,
                text="Unregistered",
                unregistered_at=utcnow(),
            )
        found[f"{side}_message"] = make_sent_message(app, ids["id"])
    return found


def _key(http: httpx.Client, keys: Any, role: str, apps: list[int] | None) -> dict[str, str]:
    body: dict[str, Any] = {"name": f"agency {role}", "role": role}
    if apps is not None:
        body["apps"] = apps
    made = http.post("/api/v1/keys", json=body, headers=keys.admin)
    assert made.status_code == 201, made.text
    assert made.json()["apps"] == apps
    return {"Authorization": f"Bearer {made.json()['key']}"}


def test_a_key_limited_to_one_app_reaches_nothing_of_another(
    app: Flask, live_server: str, keys: Any, world: dict[str, Any]
) -> None:
    mine, theirs = world["mine"]["id"], world["theirs"]["id"]
    their_delivery = world["theirs_message"][1]
    with httpx.Client(base_url=live_server, timeout=10) as http:
        agency = _key(http, keys, "marketer", [mine])
        admin_of_a = _key(http, keys, "admin", [mine])
        everyone = _key(http, keys, "marketer", None)

        assert [a["id"] for a in http.get("/api/v1/apps", headers=agency).json()["items"]] == [mine]
        assert {a["id"] for a in http.get("/api/v1/apps", headers=everyone).json()["items"]} == {mine, theirs}
        for path in (
            f"/api/v1/apps/{theirs}",
            f"/api/v1/apps/{theirs}/subscriptions",
            f"/api/v1/apps/{theirs}/sdk-config?platform=android&sdk=campaign-classic",
            f"/api/v1/deliveries/{their_delivery}",
            f"/api/v1/deliveries/{their_delivery}/broadlogs",
        ):
            refused = http.get(path, headers=agency)
            assert refused.status_code == 404, path
            assert http.get(path, headers=everyone).status_code == 200, path
        delivery = {"app_id": theirs, "name": "Sale", "message": {"body": "20% off"}, "target": {"all": True}}
        assert http.post("/api/v1/deliveries", json=delivery, headers=agency).status_code == 404
        assert http.post(f"/api/v1/deliveries/{their_delivery}/cancel", headers=agency).status_code == 404
        preview = {"app_id": theirs, "message": {"body": "hi"}}
        assert http.post("/api/v1/deliveries/preview", json=preview, headers=agency).status_code == 404
        listed = http.get("/api/v1/deliveries", headers=agency).json()["items"]
        assert {d["app_id"] for d in listed} == {mine}
        quarantine = http.get("/api/v1/quarantine", headers=agency).json()["items"]
        assert {q["app_id"] for q in quarantine} == {mine}
        their_entry = next(
            q["id"] for q in http.get("/api/v1/quarantine", headers=everyone).json()["items"] if q["app_id"] == theirs
        )
        assert http.delete(f"/api/v1/quarantine/{their_entry}", headers=agency).status_code == 404
        assert http.patch(f"/api/v1/apps/{theirs}", json={"name": "Mine now"}, headers=admin_of_a).status_code == 404
        assert http.delete(f"/api/v1/apps/{theirs}", headers=admin_of_a).status_code == 404

        # What reaches beyond one app needs an unlimited key.
        new_app = {"name": "Another", "android": {"package_name": "com.example.another"}}
        assert http.post("/api/v1/apps", json=new_app, headers=admin_of_a).status_code == 403
        assert http.get("/api/v1/keys", headers=admin_of_a).status_code == 403
        escalate = {"name": "unlimited", "role": "admin"}
        assert http.post("/api/v1/keys", json=escalate, headers=admin_of_a).status_code == 403
        assert http.get("/api/v1/sync/runs", headers=admin_of_a).status_code == 403
        # Profiles are shared by every app: a limited key erases them only as admin.
        profile = f"/api/v1/profiles/{crm_id(42)}"
        assert http.put(profile, json={}, headers=agency).status_code == 201
        assert http.delete(profile, headers=agency).status_code == 403
        assert http.delete(profile, headers=admin_of_a).status_code == 204

        # Its own app works as before.
        assert http.get(f"/api/v1/apps/{mine}/subscriptions", headers=agency).status_code == 200
        ok = {**delivery, "app_id": mine}
        assert http.post("/api/v1/deliveries", json=ok, headers=agency).status_code == 201


def test_keys_limited_to_unknown_apps_are_refused(live_server: str, keys: Any) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as http:
        refused = http.post("/api/v1/keys", json={"name": "x", "role": "viewer", "apps": [424242]}, headers=keys.admin)
        assert refused.status_code == 400 and refused.json()["error"] == "unknown_app"
