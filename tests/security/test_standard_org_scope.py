"""Issue 14, item 3: Campaign Standard's ``/id`` stays inside the org it names.

``d_orgid`` ships in every app's configuration, so an attacker knows any company's org id and can
call ``/id`` with any ECID. Before the fix, a null token sent through org A deleted that ECID's
subscriptions in every org's apps, and a token sent through org A replaced the one org B's app
held for the same ECID.
"""

from __future__ import annotations

from typing import Any

import httpx
from flask import Flask

from tests.factories import make_app
from tests.values import ECID, ORG, ORG_2, fcm_token

VICTIM_TOKEN = fcm_token("victim-phone")


def _id_call(http: httpx.Client, org: str, token: str) -> httpx.Response:
    # The Identity extension's Android form: the token after 20919 and \x01, all percent-encoded.
    return http.get(
        "/id",
        params={"d_ver": "2", "d_rtbd": "json", "d_orgid": org, "d_mid": ECID, "d_cid": f"20919\x01{token}"},
    )


def _launch(http: httpx.Client, pkey: str) -> httpx.Response:
    return http.post(
        f"/rest/head/mobileAppV5/{pkey}/subscriptions/{ECID}",
        json={"pushPlatform": "fcm", "marketingCloudId": ECID},
    )


def _tokens(http: httpx.Client, keys: Any, app_id: int) -> list[str]:
    answer = http.get(f"/api/v1/apps/{app_id}/subscriptions", headers=keys.viewer)
    return [item["token"] for item in answer.json()["items"]]


def test_id_calls_of_one_org_never_change_another_orgs_subscriptions(app: Flask, live_server: str, keys: Any) -> None:
    victim = make_app(app, name="Victim bank", org=ORG_2, suffix="-victim")
    attacker = make_app(app, name="Attacker shop", org=ORG)
    with httpx.Client(base_url=live_server, timeout=10) as http:
        # The victim's phone: its app in org B registers the ECID and its token.
        assert _launch(http, victim["pkey"]).status_code == 200
        assert _id_call(http, ORG_2, VICTIM_TOKEN).status_code == 200
        assert _tokens(http, keys, victim["id"]) == [VICTIM_TOKEN]

        # Through org A (the attacker's own app), a token of its own for the victim's ECID ...
        assert _launch(http, attacker["pkey"]).status_code == 200
        assert _id_call(http, ORG, fcm_token("attacker")).status_code == 200
        assert _tokens(http, keys, attacker["id"]) == [fcm_token("attacker")]
        assert _tokens(http, keys, victim["id"]) == [VICTIM_TOKEN]

        # ... and the null token that removes an ECID's subscriptions.
        assert _id_call(http, ORG, "null").status_code == 200
        assert _tokens(http, keys, attacker["id"]) == []
        assert _tokens(http, keys, victim["id"]) == [VICTIM_TOKEN]

        # A later launch of the victim's app still pairs with the token its own org holds.
        assert _launch(http, victim["pkey"]).status_code == 200
        assert _tokens(http, keys, victim["id"]) == [VICTIM_TOKEN]
