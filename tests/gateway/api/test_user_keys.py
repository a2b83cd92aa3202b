"""User-key verification through the API: the secret shown once (creation, rotation), the mode set
with PATCH, and native registrations linked or stored unlinked under each mode, counted."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from core.metrics import UNVERIFIED_USER_KEYS
from gateway.api.schemas import AppOut
from tests.factories import make_app, make_profile
from tests.gateway.api.helpers import app_body
from tests.values import crm_id, fcm_token

USER = crm_id(42)


def _hash(secret: str, user_key: str = USER) -> str:
    return hmac.new(secret.encode(), user_key.encode(), hashlib.sha256).hexdigest()


def _unverified(reason: str) -> float:
    return float(UNVERIFIED_USER_KEYS.labels("native", "android", reason)._value.get())


def _linked(client: FlaskClient, keys: Any, body: dict[str, Any]) -> Any:
    """Register natively; the stored view's linked profile's external id, or None."""
    answer = client.post("/api/v1/subscriptions", json=body)
    assert answer.status_code in (200, 201) and set(answer.json) == {"id", "status"}, answer.json
    stored = client.get(f"/api/v1/subscriptions/{answer.json['id']}", headers=keys.viewer).json
    return None if stored["profile"] is None else stored["profile"]["external_id"]


def test_a_creation_that_verifies_shows_the_secret_once(client: FlaskClient, keys: Any) -> None:
    made = client.post("/api/v1/apps", json=app_body(user_key_verification="required"), headers=keys.admin)
    assert made.status_code == 201, made.json
    secret = made.json["user_key_secret"]
    assert len(secret) == 43 and AppOut.model_validate(made.json).user_key_secret_set
    fetched = client.get(f"/api/v1/apps/{made.json['id']}", headers=keys.viewer)
    assert fetched.json["user_key_verification"] == "required" and fetched.json["user_key_secret_set"] is True
    assert "user_key_secret" not in fetched.json and secret not in fetched.get_data(as_text=True)
    listed = client.get("/api/v1/apps", headers=keys.viewer).get_data(as_text=True)
    assert secret not in listed

    plain = client.post("/api/v1/apps", json=app_body("Plain"), headers=keys.admin).json
    assert "user_key_secret" not in plain
    assert (plain["user_key_verification"], plain["user_key_secret_set"]) == ("off", False)


def test_verification_is_turned_on_only_once_a_secret_exists(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = make_app(app)
    url = f"/api/v1/apps/{ids['id']}"
    refused = client.patch(url, json={"user_key_verification": "optional"}, headers=keys.admin)
    assert refused.status_code == 409 and refused.json["error"] == "user_key_secret_missing"
    assert "/user-key-secret" in refused.json["message"]
    assert client.patch(url, json={"user_key_verification": None}, headers=keys.admin).status_code == 400
    assert client.patch(url, json={"user_key_verification": "always"}, headers=keys.admin).status_code == 400
    assert client.post(f"{url}/user-key-secret", headers=keys.marketer).status_code == 403
    assert client.post("/api/v1/apps/99999/user-key-secret", headers=keys.admin).status_code == 404

    first = client.post(f"{url}/user-key-secret", headers=keys.admin)
    assert first.status_code == 200 and first.json["user_key_verification"] == "off"
    AppOut.model_validate(first.json)
    changed = client.patch(url, json={"user_key_verification": "optional"}, headers=keys.admin)
    assert changed.status_code == 200 and "user_key_secret" not in changed.json
    second = client.post(f"{url}/user-key-secret", headers=keys.admin).json["user_key_secret"]
    assert second != first.json["user_key_secret"]
    assert client.patch(url, json={"user_key_verification": "off"}, headers=keys.admin).json["user_key_secret_set"]


def test_each_mode_links_the_registrations_it_should(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = make_app(app)
    make_profile(app, USER, first_name="Ada")
    url = f"/api/v1/apps/{ids['id']}"
    old = client.post(f"{url}/user-key-secret", headers=keys.admin).json["user_key_secret"]
    secret = client.post(f"{url}/user-key-secret", headers=keys.admin).json["user_key_secret"]
    key = ids["android_key"]

    def body(seed: str, user_key_hash: str | None = None, **extra: Any) -> dict[str, Any]:
        sent = {"integration_key": key, "token": fcm_token(seed), "user_key": USER, **extra}
        return sent if user_key_hash is None else {**sent, "user_key_hash": user_key_hash}

    assert _linked(client, keys, body("off-none")) == USER
    assert _linked(client, keys, body("off-wrong", "0" * 64)) == USER

    client.patch(url, json={"user_key_verification": "optional"}, headers=keys.admin)
    missing, invalid = _unverified("missing"), _unverified("invalid")
    assert _linked(client, keys, body("optional-none")) == USER
    assert _linked(client, keys, body("optional-right", _hash(secret))) == USER
    assert _linked(client, keys, body("optional-old", _hash(old))) is None  # the rotated-out secret
    assert (_unverified("missing"), _unverified("invalid")) == (missing, invalid + 1)

    client.patch(url, json={"user_key_verification": "required"}, headers=keys.admin)
    assert _linked(client, keys, body("required-none")) is None
    assert _linked(client, keys, body("required-other", _hash(secret, crm_id(7)))) is None
    assert _linked(client, keys, body("required-malformed", "not a hash")) is None
    assert _linked(client, keys, body("required-right", _hash(secret))) == USER
    # The hash may travel among the params too, and is never stored there.
    params = {"tier": "gold", "userKeyHash": _hash(secret)}
    answer = client.post("/api/v1/subscriptions", json=body("required-param", params=params))
    stored = client.get(f"/api/v1/subscriptions/{answer.json['id']}", headers=keys.viewer).json
    assert stored["profile"]["external_id"] == USER and stored["additional_params"] == {"tier": "gold"}
    assert (_unverified("missing"), _unverified("invalid")) == (missing + 1, invalid + 3)

    # A linked device that registers again without its hash is unlinked: every call states the key anew.
    assert _linked(client, keys, body("required-right")) is None
    assert _linked(client, keys, {"integration_key": key, "token": fcm_token("nobody")}) is None


def test_the_hash_is_documented(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    schemas = document["components"]["schemas"]
    assert "HMAC-SHA256" in schemas["NativeRegistration"]["properties"]["user_key_hash"]["description"]
    assert "userKeyHash" in document["paths"]["/nms/mobile/1/registerAndroid.jssp"]["post"]["description"]
    assert "user_key_verification" in schemas["AppPatch"]["properties"]
    assert "user_key_secret" in schemas["AppOut"]["properties"]


def test_the_sdk_configuration_of_an_app_that_verifies_sends_the_hash(
    app: Flask, client: FlaskClient, keys: Any
) -> None:
    ids = make_app(app)
    url = f"/api/v1/apps/{ids['id']}"
    config = f"{url}/sdk-config?platform=android&sdk=campaign-classic"
    assert "userKeyHash" not in client.get(config, headers=keys.marketer).json["snippets"]["kotlin"]
    client.post(f"{url}/user-key-secret", headers=keys.admin)
    client.patch(url, json={"user_key_verification": "required"}, headers=keys.admin)
    assert "userKeyHash" in client.get(config, headers=keys.marketer).json["snippets"]["kotlin"]
