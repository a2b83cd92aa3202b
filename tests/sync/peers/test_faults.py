"""Fault injection: each injected status with Adobe's body and headers, partial 207 failures,
slow answers, and the control API itself."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.sync.peers.conftest import Aep, event

STATS = "/data/foundation/schemaregistry/stats"


def inject(http: httpx.Client, **spec: object) -> None:
    response = http.post("/_peer/faults", json=spec)
    assert response.status_code == 201, response.text


def test_401_on_the_registry_then_normal_again(aep: Aep, http: httpx.Client) -> None:
    aep.token()
    inject(http, path="registry", status=401)
    first = aep.call("GET", STATS)
    assert first.status_code == 401 and first.json() == {"error_code": "401013", "message": "Oauth token is not valid"}
    assert aep.call("GET", STATS).status_code == 200


def test_429_with_retry_after_for_the_next_n_calls(aep: Aep, http: httpx.Client, events: dict[str, str]) -> None:
    inject(http, path="catalog", status=429, times=2, retry_after=7)
    for _ in range(2):
        limited = aep.call("GET", f"/data/foundation/catalog/dataSets/{events['dataset']}")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
        assert limited.json()["error_code"].startswith("429")
    assert aep.call("GET", f"/data/foundation/catalog/dataSets/{events['dataset']}").status_code == 200
    assert http.get("/_peer/faults").json() == []


def test_503_on_streaming_with_retry_after(aep: Aep, http: httpx.Client, events: dict[str, str]) -> None:
    message = aep.envelope(events["schema"], events["dataset"], event("e1"))
    inject(http, path="streaming-batch", status=503)
    refused = aep.stream([message])
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["type"] == "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
    assert aep.records(events["dataset"]) == []  # refused as a whole: nothing kept
    assert aep.stream([message]).status_code == 207
    inject(http, path="streaming", status=503)
    assert aep.call("POST", f"/collection/{aep.config.inlet_id}", json=message).status_code == 503


def test_413_on_streaming_and_401_on_ims(aep: Aep, http: httpx.Client, events: dict[str, str]) -> None:
    inject(http, path="streaming-batch", status=413)
    too_large = aep.stream([aep.envelope(events["schema"], events["dataset"], event("e1"))])
    assert too_large.status_code == 413 and too_large.json()["title"] == "Payload Too Large"
    inject(http, path="ims", status=401)
    form = {
        "grant_type": "client_credentials",
        "client_id": aep.config.client_id,
        "client_secret": aep.config.client_secret,
        "scope": "openid",
    }
    refused = http.post("/ims/token/v3", data=form)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert http.post("/ims/token/v3", data=form).status_code == 200


def test_partial_every_third_message_is_retryable(aep: Aep, http: httpx.Client, events: dict[str, str]) -> None:
    messages = [aep.envelope(events["schema"], events["dataset"], event(f"e{n}")) for n in range(1, 8)]
    inject(http, path="streaming-batch", partial={"every": 3})
    results = aep.stream(messages).json()["responses"]
    assert [r.get("statusCode") for r in results] == [None, None, 503, None, None, 503, None]
    assert "Service is not currently available" in results[2]["message"]
    assert [r["record"]["_id"] for r in aep.records(events["dataset"])] == ["e1", "e2", "e4", "e5", "e7"]
    again = aep.stream([messages[2], messages[5]]).json()["responses"]  # the fault is spent
    assert all("xactionId" in r for r in again)


def test_partial_by_id(aep: Aep, http: httpx.Client, events: dict[str, str]) -> None:
    messages = [aep.envelope(events["schema"], events["dataset"], event(f"e{n}")) for n in range(1, 4)]
    inject(http, path="streaming-batch", partial={"ids": ["e2"], "status": 500}, times=2)
    for _ in range(2):
        results = aep.stream(messages).json()["responses"]
        assert [r.get("statusCode") for r in results] == [None, 500, None]
    assert [r.get("statusCode") for r in aep.stream(messages).json()["responses"]] == [None, None, None]


def test_slow_answers(aep: Aep, http: httpx.Client) -> None:
    aep.token()
    inject(http, path="registry", slow=0.4)
    started = time.monotonic()
    assert aep.call("GET", STATS).status_code == 200
    assert time.monotonic() - started >= 0.4


@pytest.mark.parametrize(
    "spec",
    [
        {"path": "elsewhere", "status": 503},
        {"path": "catalog", "status": 418},
        {"path": "catalog"},
        {"path": "catalog", "status": 503, "times": 0},
        {"path": "streaming", "partial": {"every": 2}},
        {"path": "streaming-batch", "partial": {}},
    ],
)
def test_control_api_refuses_nonsense(http: httpx.Client, spec: dict[str, object]) -> None:
    assert http.post("/_peer/faults", json=spec).status_code == 400


def test_control_api_lists_clears_and_logs(aep: Aep, http: httpx.Client) -> None:
    inject(http, path="batch", status=500, times=3)
    assert http.get("/_peer/faults").json() == [{"path": "batch", "times": 3, "status": 500}]
    assert http.delete("/_peer/faults").status_code == 204
    assert http.get("/_peer/faults").json() == []
    aep.call("GET", STATS)
    log = http.get("/_peer/requests").json()
    assert [(e["method"], e["path"], e["category"], e["status"]) for e in log] == [
        ("POST", "/ims/token/v3", "ims", 200),
        ("GET", STATS, "registry", 200),
    ]
    assert http.get("/_peer/state").json()["calls"] == {"ims": 1, "registry": 1}
    assert http.post("/_peer/reset").status_code == 200
    assert aep.call("GET", STATS).status_code == 401  # tokens are forgotten too
