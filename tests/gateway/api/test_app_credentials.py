"""/api/v1/apps credentials: checked for real on input, sealed at rest, never in a response or log."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.runtime import runtime
from store.models import AppPlatform
from tests.factories import service_account
from tests.gateway.api.helpers import apns_certificate, app_body, pem_key, secrets_of, token_apns


def create(client: FlaskClient, keys: Any, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/apps", json=body, headers=keys.admin)


def test_credentials_are_sealed_in_the_store(app: Flask, client: FlaskClient, keys: Any) -> None:
    body = app_body()
    app_id = create(client, keys, body).json["id"]
    with app.app_context():
        rt = runtime()
        with rt.sessions() as session:
            rows = {p.platform: p for p in session.scalars(select(AppPlatform).where(AppPlatform.app_id == app_id))}
    assert rows["ios"].credential_kind == "apns_token" and rows["ios"].apns_environment == "sandbox"
    assert rows["android"].credential_kind == "fcm_service_account"
    for row in rows.values():
        assert row.credentials is not None
        for fragment in secrets_of(body):
            assert fragment.encode() not in row.credentials
    assert rt.box.open(rows["ios"].credentials)["key_p8"] == body["ios"]["apns"]["key_p8"]
    account = json.loads(rt.box.open(rows["android"].credentials)["service_account"])
    assert account == body["android"]["fcm"]["service_account"]  # every field kept, private key included


def test_given_integration_keys_are_kept(client: FlaskClient, keys: Any) -> None:
    body = app_body()
    body["ios"]["integration_key"] = "ios-key-0001"
    body["android"]["integration_key"] = "android-key-0001"
    response = create(client, keys, body)
    assert response.status_code == 201
    assert response.json["ios"]["integration_key"] == "ios-key-0001"
    assert response.json["android"]["integration_key"] == "android-key-0001"


@pytest.mark.parametrize("combined", [False, True], ids=["separate-key", "key-inside-certificate"])
def test_certificate_credentials(client: FlaskClient, keys: Any, combined: bool) -> None:
    cert, key = apns_certificate(days=90)
    apns: dict[str, Any] = (
        {"certificate_pem": cert + key, "environment": "production"}
        if combined
        else {"certificate_pem": cert, "private_key_pem": key, "environment": "production"}
    )
    body = app_body(ios={"bundle_id": "com.example.shop", "apns": apns}, android=None)
    response = create(client, keys, body)
    assert response.status_code == 201, response.json
    shown = response.json["ios"]["apns"]
    assert shown["auth"] == "certificate" and shown["environment"] == "production"
    assert shown["subject"] == "CN=Apple Push Services: com.example.shop"
    assert shown["expires_at"].startswith("20")
    assert response.json["android"] is None
    for fragment in secrets_of(body):
        assert fragment not in response.get_data(as_text=True)


def _bad_ios(apns: dict[str, Any]) -> dict[str, Any]:
    return app_body(ios={"bundle_id": "com.example.shop", "apns": apns}, android=None)


def _bad_android(account: dict[str, Any]) -> dict[str, Any]:
    return app_body(android={"package_name": "com.example.shop", "fcm": {"service_account": account}}, ios=None)


def _rsa_pem() -> str:
    return pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _p384_pem() -> str:
    return pem_key(ec.generate_private_key(ec.SECP384R1()))


def _mismatched() -> dict[str, Any]:
    cert, _ = apns_certificate()
    return {"certificate_pem": cert, "private_key_pem": _rsa_pem(), "environment": "sandbox"}


def _expired() -> dict[str, Any]:
    cert, key = apns_certificate(days=-1)
    return {"certificate_pem": cert, "private_key_pem": key, "environment": "sandbox"}


def _without_key() -> dict[str, Any]:
    return {"certificate_pem": apns_certificate()[0], "environment": "sandbox"}


BAD_CREDENTIALS = {
    "p8-garbage": (
        lambda: _bad_ios(token_apns(key_p8="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----")),
        "ios.apns.key_p8",
    ),
    "p8-rsa": (lambda: _bad_ios(token_apns(key_p8=_rsa_pem())), "EC P-256"),
    "p8-p384": (lambda: _bad_ios(token_apns(key_p8=_p384_pem())), "EC P-256"),
    "key-id-short": (lambda: _bad_ios(token_apns(key_id="ABC")), "key_id"),
    "team-id-symbols": (lambda: _bad_ios(token_apns(team_id="TEAM-12345")), "team_id"),
    "environment": (lambda: _bad_ios(token_apns(environment="staging")), "environment"),
    "neither-kind": (lambda: _bad_ios({"environment": "sandbox"}), "key_p8"),
    "certificate-garbage": (
        lambda: _bad_ios({"certificate_pem": "not a pem", "private_key_pem": _rsa_pem(), "environment": "sandbox"}),
        "X.509",
    ),
    "certificate-other-key": (lambda: _bad_ios(_mismatched()), "does not belong"),
    "certificate-expired": (lambda: _bad_ios(_expired()), "expired"),
    "certificate-no-key": (lambda: _bad_ios(_without_key()), "private key"),
    "sa-type": (lambda: _bad_android({**service_account(), "type": "authorized_user"}), "service_account"),
    "sa-no-project": (
        lambda: _bad_android({k: v for k, v in service_account().items() if k != "project_id"}),
        "project_id",
    ),
    "sa-bad-key": (
        lambda: _bad_android(
            {**service_account(), "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}
        ),
        "private_key",
    ),
    "sa-token-uri": (lambda: _bad_android({**service_account(), "token_uri": "ftp://x"}), "token_uri"),
    "sa-email": (lambda: _bad_android({**service_account(), "client_email": "nobody"}), "client_email"),
    "fcm-not-object": (lambda: app_body(android={"package_name": "com.example.shop", "fcm": "json"}, ios=None), "fcm"),
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
def test_bad_credentials_are_refused_without_echoing_them(
    client: FlaskClient, keys: Any, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    build, expected = BAD_CREDENTIALS[case]
    body = build()
    with caplog.at_level(logging.DEBUG):
        response = create(client, keys, body)
    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid_request"
    assert expected in response.json["message"] + json.dumps(response.json.get("details"))
    text = response.get_data(as_text=True) + caplog.text
    for fragment in secrets_of(body):
        assert fragment not in text
    assert client.get("/api/v1/apps", headers=keys.viewer).json["items"] == []


def test_no_log_line_carries_credentials(client: FlaskClient, keys: Any, caplog: pytest.LogCaptureFixture) -> None:
    body = app_body()
    cert, key = apns_certificate()
    change = {"ios": {"apns": {"certificate_pem": cert, "private_key_pem": key, "environment": "sandbox"}}}
    with caplog.at_level(logging.DEBUG):
        app_id = create(client, keys, body).json["id"]
        assert client.patch(f"/api/v1/apps/{app_id}", json=change, headers=keys.admin).status_code == 200
        client.get("/api/v1/apps", headers=keys.viewer)
    assert caplog.records, "the API logs its writes"
    for fragment in [*secrets_of(body), *secrets_of(change), "PRIVATE KEY"]:
        assert fragment not in caplog.text
