"""Issue 14, item 2: a registration cannot take someone else's user key.

An attacker holds what every copy of the app holds: the integration key. Before the fix, a token of
the attacker's registered with a victim's user key (a CRM id or an e-mail, seldom secret) was linked
to the victim's profile, and every delivery to the victim reached the attacker's phone too. With
``user_key_verification: "required"`` a user key links only with ``HMAC-SHA256(secret, user key)``
from the app's backend; without it the registration is still answered as usual, but unlinked.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import quote

import httpx
from flask import Flask

from gateway.worker import engine_settings
from push.engine import Engine
from tests.conftest import runtime_of
from tests.factories import make_app, make_profile
from tests.values import apns_token, crm_id, fcm_token

FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}


def _hash(secret: str, user_key: str) -> str:
    """What the app's backend computes (README, "Verified user keys")."""
    return hmac.new(secret.encode(), user_key.encode(), hashlib.sha256).hexdigest()


def _require_verification(http: httpx.Client, admin: dict[str, str], app_id: int) -> str:
    """The operator's steps: make the secret (for the backend), then require it. Returns the secret."""
    made = http.post(f"/api/v1/apps/{app_id}/user-key-secret", headers=admin)
    assert made.status_code == 200, made.text
    secret: str = made.json()["user_key_secret"]
    changed = http.patch(f"/api/v1/apps/{app_id}", json={"user_key_verification": "required"}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert secret not in changed.text and secret not in http.get(f"/api/v1/apps/{app_id}", headers=admin).text
    return secret


def _reached(app: Flask, http: httpx.Client, keys: Any, app_id: int, external_id: str) -> set[str]:
    """The tokens a delivery to ``external_id``'s profile is addressed to: created over HTTP and
    analysed as a worker starts it."""
    body = {
        "app_id": app_id,
        "name": "Statement ready",
        "target": {"profiles": [external_id]},
        "message": {"title": "Hi {{ profile.first_name }}", "body": "Your March statement is ready"},
    }
    delivery = http.post("/api/v1/deliveries", json=body, headers=keys.marketer)
    assert delivery.status_code == 201, delivery.text
    rt = runtime_of(app)

    def no_provider(_part: Any) -> Any:
        raise AssertionError("analysis sends nothing")

    Engine(rt.sessions, no_provider, engine_settings(rt)).start_due()
    logs = http.get(f"/api/v1/deliveries/{delivery.json()['id']}/broadlogs", headers=keys.viewer)
    return {row["address"] for row in logs.json()["items"]}


def _classic_form(key: str, token: str, user_key: str, params: dict[str, str]) -> bytes:
    xml = "".join(f'<param name="{name}" value="{value}"/>' for name, value in params.items())
    pairs = [
        ("registrationToken", token),
        ("mobileAppUuid", key),
        ("userKey", user_key),
        ("deviceImei", "9774d56d682e549c"),
        ("deviceName", "oriole"),
        ("deviceModel", "Pixel 6"),
        ("osName", "android"),
        ("osVersion", "Android 14"),
        ("additionalParams", f"<additionalParameters>{xml}</additionalParameters>"),
    ]
    return "&".join(f"{name}={quote(value, safe='')}" for name, value in pairs).encode()


def test_a_native_registration_without_the_victims_hash_is_not_linked(app: Flask, live_server: str, keys: Any) -> None:
    ids = make_app(app)
    victim, attacker = crm_id(42), crm_id(7)
    make_profile(app, victim, first_name="Ada")
    make_profile(app, attacker, first_name="Mallory")
    victim_phone, attacker_phones = fcm_token("victim-phone"), [fcm_token(f"attacker-{n}") for n in range(3)]
    with httpx.Client(base_url=live_server, timeout=10) as http:
        secret = _require_verification(http, keys.admin, ids["id"])

        def register(token: str, user_key: str, user_key_hash: str | None) -> httpx.Response:
            body = {"integration_key": ids["android_key"], "token": token, "user_key": user_key}
            if user_key_hash is not None:
                body["user_key_hash"] = user_key_hash
            return http.post("/api/v1/subscriptions", json=body)

        answers = [register(victim_phone, victim, _hash(secret, victim))]
        # The attacker's own log-in gives it a right hash, for its own user key only.
        answers.append(register(fcm_token("attacker-own"), attacker, _hash(secret, attacker)))
        for token, claimed in zip(attacker_phones, [None, _hash(secret, attacker), "0" * 64], strict=True):
            answers.append(register(token, victim, claimed))
        for answer in answers:  # the same answer, linked or not: the SDKs never retry a refusal
            assert answer.status_code == 201 and set(answer.json()) == {"id", "status"}, answer.text

        assert _reached(app, http, keys, ids["id"], victim) == {victim_phone}
        assert _reached(app, http, keys, ids["id"], attacker) == {fcm_token("attacker-own")}
        for answer in answers[2:]:
            stored = http.get(f"/api/v1/subscriptions/{answer.json()['id']}", headers=keys.viewer).json()
            assert stored["profile"] is None and stored["user_key"] is None


def test_a_classic_registration_without_the_victims_hash_is_not_linked(app: Flask, live_server: str, keys: Any) -> None:
    ids = make_app(app)
    victim, attacker = "ada.lovelace@example.com", crm_id(7)
    make_profile(app, victim, first_name="Ada")
    victim_phone, victim_iphone = fcm_token("victim-phone"), apns_token("victim-iphone")
    attacker_phones = [fcm_token(f"attacker-{n}") for n in range(3)]
    with httpx.Client(base_url=live_server, timeout=10) as http:
        secret = _require_verification(http, keys.admin, ids["id"])
        android, ios = "/nms/mobile/1/registerAndroid.jssp", "/nms/mobile/1/registerIOS.jssp"
        vouched = {"loyalty": "gold", "userKeyHash": _hash(secret, victim)}
        sent = [
            http.post(android, content=_classic_form(ids["android_key"], victim_phone, victim, vouched), headers=FORM),
            http.post(ios, content=_classic_form(ids["ios_key"], victim_iphone, victim, vouched), headers=FORM),
        ]
        for token, params in zip(
            attacker_phones,
            [{}, {"userKeyHash": _hash(secret, attacker)}, {"userKeyHash": _hash(secret, victim).upper()[:63]}],
            strict=True,
        ):
            sent.append(
                http.post(android, content=_classic_form(ids["android_key"], token, victim, params), headers=FORM)
            )
        assert [answer.status_code for answer in sent] == [200] * 5

        assert _reached(app, http, keys, ids["id"], victim) == {victim_phone, victim_iphone}
        stored = http.get(f"/api/v1/apps/{ids['id']}/subscriptions", headers=keys.viewer).json()["items"]
        by_token = {row["token"]: row for row in stored}
        assert by_token[victim_phone]["additional_params"] == {"loyalty": "gold"}  # the hash is never stored
        assert by_token[victim_phone]["user_key"] == victim
        assert all(by_token[token]["profile"] is None for token in attacker_phones)


def test_a_profile_arriving_later_links_only_the_vouched_registrations(app: Flask, live_server: str, keys: Any) -> None:
    ids = make_app(app)
    victim = crm_id(4211)  # Campaign sends the profile after the phones registered
    victim_phone, attacker_phone = fcm_token("victim-phone"), fcm_token("attacker-phone")
    with httpx.Client(base_url=live_server, timeout=10) as http:
        secret = _require_verification(http, keys.admin, ids["id"])
        for token, user_key_hash in ((victim_phone, _hash(secret, victim)), (attacker_phone, None)):
            body = {"integration_key": ids["android_key"], "token": token, "user_key": victim}
            answer = http.post("/api/v1/subscriptions", json={**body, "user_key_hash": user_key_hash})
            assert answer.status_code == 201, answer.text
        profile = http.put(f"/api/v1/profiles/{victim}", json={"first_name": "Ada"}, headers=keys.marketer)
        assert profile.status_code == 201, profile.text
        assert profile.json()["subscription_count"] == 1
        assert _reached(app, http, keys, ids["id"], victim) == {victim_phone}
