"""IMS tokens (issue, expiry, refusal) and the headers every Platform call must carry."""

from __future__ import annotations

import httpx
import pytest

from sync.peers.platform import PeerConfig
from tests.sync.peers.conftest import Aep
from tests.values import ORG

STATS = "/data/foundation/schemaregistry/stats"


def form(aep: Aep, **changes: str) -> dict[str, str]:
    base = {
        "grant_type": "client_credentials",
        "client_id": aep.config.client_id,
        "client_secret": aep.config.client_secret,
        "scope": "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session",
    }
    return {**base, **changes}


def test_token_answer_has_adobes_shape_and_opens_the_platform(aep: Aep, http: httpx.Client) -> None:
    response = http.post("/ims/token/v3", data=form(aep))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 86399
    headers = {**aep.headers(), "Authorization": f"Bearer {body['access_token']}"}
    stats = http.get(STATS, headers=headers)
    assert stats.status_code == 200 and stats.json()["tenantId"] == aep.config.tenant_id


def test_parameters_may_come_in_the_query(aep: Aep, http: httpx.Client) -> None:
    fields = form(aep)
    response = http.post("/ims/token/v3", params={"client_id": fields.pop("client_id")}, data=fields)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({"scope": ""}, "invalid_scope"),
    ],
)
def test_wrong_credentials_are_refused(aep: Aep, http: httpx.Client, change: dict[str, str], error: str) -> None:
    response = http.post("/ims/token/v3", data=form(aep, **change))
    assert response.status_code == 400
    assert response.json()["error"] == error and response.json()["error_description"]


@pytest.mark.parametrize("peer_config", [PeerConfig(token_ttl=120)])
def test_token_expires_after_expires_in(aep: Aep, http: httpx.Client) -> None:
    assert http.post("/ims/token/v3", data=form(aep)).json()["expires_in"] == 120
    assert aep.call("GET", STATS).status_code == 200
    http.post("/_peer/time", json={"advance": 119})
    assert aep.call("GET", STATS).status_code == 200
    http.post("/_peer/time", json={"advance": 2})
    expired = aep.call("GET", STATS)
    assert expired.status_code == 401
    assert expired.json() == {"error_code": "401013", "message": "Oauth token is not valid"}
    aep._token = None  # a client asks IMS again
    assert aep.call("GET", STATS).status_code == 200
    assert http.get("/_peer/state").json()["tokens_issued"] == 3


@pytest.mark.parametrize(
    ("drop", "replace", "status", "code"),
    [
        ("Authorization", None, 401, "403010"),
        (None, ("Authorization", "Bearer not-a-token"), 401, "401013"),
        ("x-api-key", None, 403, "403000"),
        (None, ("x-api-key", "other-client"), 403, "403003"),
        ("x-gw-ims-org-id", None, 400, "400003"),
        (None, ("x-gw-ims-org-id", ORG), 403, "403025"),  # another org than the peer's
    ],
)
def test_platform_calls_need_adobes_headers(
    aep: Aep, http: httpx.Client, drop: str | None, replace: tuple[str, str] | None, status: int, code: str
) -> None:
    headers = aep.headers()
    if drop:
        del headers[drop]
    if replace:
        headers[replace[0]] = replace[1]
    response = http.get(STATS, headers=headers)
    assert response.status_code == status
    assert response.json()["error_code"] == code


def test_sandbox_defaults_to_prod_and_others_are_refused(aep: Aep, http: httpx.Client) -> None:
    headers = aep.headers()
    del headers["x-sandbox-name"]
    assert http.get(STATS, headers=headers).status_code == 200
    other = http.get(STATS, headers={**headers, "x-sandbox-name": "dev-sandbox"})
    assert other.status_code == 403 and "dev-sandbox" in other.json()["detail"]
