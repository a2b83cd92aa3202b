"""Issue 14, item 1: the public registration answer is no look-up service.

An attacker holds what every copy of the app holds: the integration key. Before the fix, the answer
to ``POST /api/v1/subscriptions`` named the profile a user key matched (turning an e-mail into the
CRM id) and echoed the stored device data of any token re-registered (IMEI, device name, params).
"""

from __future__ import annotations

from typing import Any

import httpx
from flask import Flask

from tests.factories import make_app, make_profile
from tests.values import crm_id, fcm_token

IMEI = "356938035643809"


def test_registration_answers_only_that_the_token_is_registered(app: Flask, live_server: str, keys: Any) -> None:
    ids = make_app(app)
    victim = crm_id(42)
    make_profile(app, victim, email="ada.lovelace@example.com")
    victim_token = fcm_token("victim-phone")
    with httpx.Client(base_url=live_server, timeout=10) as http:
        # The victim's phone registers, as the app does on every launch.
        phone = http.post(
            "/api/v1/subscriptions",
            json={
                "integration_key": ids["android_key"],
                "token": victim_token,
                "user_key": victim,
                "device": {"device_imei": IMEI, "device_name": "Ada's Pixel"},
                "params": {"loyalty_tier": "gold"},
            },
        )
        assert phone.status_code == 201
        # An API key holder reads the full view.
        full = http.get(f"/api/v1/subscriptions/{phone.json()['id']}", headers=keys.viewer).json()
        assert full["device"]["device_imei"] == IMEI and full["profile"]["external_id"] == victim
        # The attacker re-registers that token, and registers its own with the victim's e-mail.
        replayed = http.post(
            "/api/v1/subscriptions", json={"integration_key": ids["android_key"], "token": victim_token}
        )
        probe = http.post(
            "/api/v1/subscriptions",
            json={
                "integration_key": ids["android_key"],
                "token": fcm_token("attacker"),
                "user_key": "ada.lovelace@example.com",
            },
        )
        for answer in (phone, replayed, probe):
            assert set(answer.json()) == {"id", "status"} and answer.json()["status"] == "registered"
            for secret in (victim, IMEI, "Ada's Pixel", "gold", "ada.lovelace@example.com"):
                assert secret not in answer.text
