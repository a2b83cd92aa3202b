"""Privacy Service jobs: created one per user and action, listed, looked up, refused when the request
is not one Adobe takes, behind the Platform's headers (the sandbox aside), and faults."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sync.peers.conftest import Aep
from tests.values import crm_id

JOBS = "/data/core/privacy/jobs"


def job_request(aep: Aep, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "companyContexts": [{"namespace": "imsOrgID", "value": aep.config.org_id}],
        "users": [
            {
                "key": "pushgate-1",
                "action": ["delete"],
                "userIDs": [
                    {"namespace": "CRMID", "value": crm_id(1), "type": "custom"},
                    {"namespace": "Email", "value": "alice.martin@example.com", "type": "standard"},
                ],
            },
            {
                "key": "pushgate-2",
                "action": ["access", "delete"],
                "userIDs": [{"namespace": "CRMID", "value": crm_id(2), "type": "unregistered"}],
            },
        ],
        "include": ["profileService", "identity", "aepDataLake"],
        "expandIds": False,
        "priority": "normal",
        "regulation": "gdpr",
    }
    body.update(changes)
    return body


def test_a_request_creates_one_job_per_user_and_action(aep: Aep) -> None:
    created = aep.call("POST", JOBS, json=job_request(aep))
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["requestStatus"] == 1 and body["totalRecords"] == 3
    assert [(j["customer"]["user"]["key"], j["customer"]["user"]["action"]) for j in body["jobs"]] == [
        ("pushgate-1", ["delete"]),
        ("pushgate-2", ["access"]),
        ("pushgate-2", ["delete"]),
    ]
    assert len({j["jobId"] for j in body["jobs"]}) == 3
    first = body["jobs"][0]["jobId"]
    one = aep.call("GET", f"{JOBS}/{first}")
    assert one.status_code == 200
    job = one.json()
    assert (job["jobId"], job["userKey"], job["action"], job["status"], job["regulation"]) == (
        first,
        "pushgate-1",
        "delete",
        "processing",
        "gdpr",
    )
    assert job["userIds"][0] == {"namespace": "CRMID", "value": crm_id(1), "type": "custom"}
    assert job["createdDate"].endswith(" GMT")
    assert aep.call("GET", f"{JOBS}/00000000-0000-0000-0000-000000000000").status_code == 404
    assert [j["jobId"] for j in aep.peer.privacy_jobs()] == [j["jobId"] for j in body["jobs"]]


def test_jobs_are_listed_per_regulation_a_page_at_a_time(aep: Aep, http: httpx.Client) -> None:
    assert aep.call("POST", JOBS, json=job_request(aep)).status_code == 200
    assert aep.call("POST", JOBS, json=job_request(aep, regulation="ccpa")).status_code == 200
    listed = aep.call("GET", JOBS, params={"regulation": "gdpr", "size": "2", "page": "1"}).json()
    assert (listed["totalRecords"], listed["page"], listed["size"]) == (3, 1, 2)
    assert [item["userKey"] for item in listed["items"]] == ["pushgate-2"]
    assert aep.call("GET", JOBS, params={"regulation": "ccpa"}).json()["totalRecords"] == 3
    assert aep.call("GET", JOBS).status_code == 400  # the regulation is required
    assert aep.call("GET", JOBS, params={"regulation": "gdpr", "size": "1001"}).status_code == 400
    held = http.get("/_peer/state").json()["privacy_jobs"]
    assert len(held) == 6 and held[0]["userIds"][1]["namespace"] == "Email"


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"companyContexts": []}, "namespace imsOrgID"),
        ({"companyContexts": [{"namespace": "imsOrgID", "value": "0" * 24 + "@AdobeOrg"}]}, "not the organization"),
        ({"users": []}, "1 to 1000 users"),
        ({"users": [{"key": "k", "action": ["forget"], "userIDs": []}]}, "access and/or delete"),
        ({"users": [{"key": "", "action": ["delete"], "userIDs": []}]}, "key is required"),
        ({"users": [{"key": "k", "action": ["delete"], "userIDs": []}]}, "1 to 9 identities"),
        (
            {"users": [{"key": "k", "action": ["delete"], "userIDs": [{"namespace": "CRMID", "value": "x"}]}]},
            "type must be one of",
        ),
        ({"include": []}, "include is required"),
        ({"include": ["everything"]}, "unknown product"),
        ({"regulation": "ucpa_usa"}, "regulation must be one of"),  # the old value, retired by Adobe
        ({"regulation": None}, "regulation must be one of"),
        ({"priority": "urgent"}, "normal or low"),
    ],
)
def test_requests_adobe_would_refuse_are_refused(aep: Aep, changes: dict[str, Any], detail: str) -> None:
    refused = aep.call("POST", JOBS, json=job_request(aep, **changes))
    assert refused.status_code == 400
    assert detail in refused.json()["detail"]
    assert aep.peer.privacy_jobs() == []


def test_more_than_1000_users_or_nine_ids_are_refused(aep: Aep) -> None:
    user = {"key": "k", "action": ["delete"], "userIDs": [{"namespace": "CRMID", "value": "x", "type": "custom"}]}
    many = [{**user, "key": f"k{n}"} for n in range(1001)]
    assert aep.call("POST", JOBS, json=job_request(aep, users=many)).status_code == 400
    assert aep.call("POST", JOBS, json=job_request(aep, users=many[:1000])).json()["totalRecords"] == 1000
    crowded = {**user, "userIDs": user["userIDs"] * 10}
    assert "1 to 9 identities" in aep.call("POST", JOBS, json=job_request(aep, users=[crowded])).json()["detail"]
    products = ["ProfileService", "AEPDATALAKE", "Identity"]  # Adobe: product values ignore case
    assert aep.call("POST", JOBS, json=job_request(aep, include=products)).status_code == 200


def test_the_platform_headers_are_checked_but_not_the_sandbox(aep: Aep, http: httpx.Client) -> None:
    body = job_request(aep)
    assert http.post(JOBS, json=body).status_code == 401
    wrong_key = aep.call("POST", JOBS, json=body, headers={"x-api-key": "someone-else"})
    assert wrong_key.status_code == 403 and wrong_key.json()["error_code"] == "403003"
    other_org = aep.call("POST", JOBS, json=body, headers={"x-gw-ims-org-id": "0" * 24 + "@AdobeOrg"})
    assert other_org.status_code == 403
    # A job covers every sandbox of the organization: Adobe ignores x-sandbox-name here.
    assert aep.call("POST", JOBS, json=body, headers={"x-sandbox-name": "dev"}).status_code == 200
    assert aep.call("GET", "/data/foundation/catalog/dataSets", headers={"x-sandbox-name": "dev"}).status_code == 403


def test_faults_on_the_privacy_service(aep: Aep, http: httpx.Client) -> None:
    injected = http.post("/_peer/faults", json={"path": "privacy", "status": 503, "times": 2})
    assert injected.status_code == 201
    for _ in range(2):
        down = aep.call("POST", JOBS, json=job_request(aep))
        assert down.status_code == 503 and down.headers["Retry-After"] == "1"
    assert aep.peer.privacy_jobs() == []
    assert aep.call("POST", JOBS, json=job_request(aep)).status_code == 200
    calls = [r for r in http.get("/_peer/requests").json() if r["category"] == "privacy"]
    assert [r["status"] for r in calls] == [503, 503, 200]
