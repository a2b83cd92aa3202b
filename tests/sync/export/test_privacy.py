"""Erased people out of the Platform: ``sync logs`` sends a Privacy Service delete job for each
queued erasure, to the local Platform peer over real HTTP, and never keeps or logs an identity."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import select

from core.errors import PermanentError
from core.secrets import SecretBox
from store.models import PrivacyRequest
from sync.export import privacy as export_privacy
from sync.peers.platform import PlatformPeer
from sync.platform import privacy
from sync.platform.client import ATTEMPTS
from tests.conftest import runtime_of
from tests.sync.export.conftest import run_job
from tests.values import crm_id

ALICE, ALICE_EMAIL = crm_id(4211), "alice.martin@example.com"


def queue(app: Flask, external_id: str, email: str | None = None, *, regulation: str = "gdpr") -> int:
    """An erasure waiting for the Platform, sealed as the gateway seals it; returns its id."""
    rt = runtime_of(app)
    with rt.sessions.begin() as session:
        row = PrivacyRequest(
            regulation=regulation, identities=rt.box.seal({"external_id": external_id, "email": email})
        )
        session.add(row)
        session.flush()
        return row.id


def rows(app: Flask) -> dict[int, PrivacyRequest]:
    with runtime_of(app).sessions() as session:
        found = session.scalars(select(PrivacyRequest).order_by(PrivacyRequest.id)).all()
        session.expunge_all()
    return {row.id: row for row in found}


def outcome(run: Any) -> dict[str, Any]:
    return next(item for item in run.summary["details"] if item["name"] == "privacy")


def test_a_queued_erasure_becomes_a_delete_job_and_its_identities_are_forgotten(
    app: Flask, peer: PlatformPeer, provisioned: Any, caplog: pytest.LogCaptureFixture
) -> None:
    row_id = queue(app, ALICE, ALICE_EMAIL)
    caplog.set_level(logging.DEBUG)
    run = run_job(app, "logs")
    assert run.status == "succeeded", run.error
    (job,) = peer.privacy_jobs()
    assert (job["userKey"], job["action"], job["regulation"]) == (f"pushgate-{row_id}", "delete", "gdpr")
    assert job["include"] == ["profileService", "identity", "aepDataLake"]
    assert job["companyContexts"] == [{"namespace": "imsOrgID", "value": peer.config.org_id}]
    assert job["userIds"] == [
        {"namespace": "CRMID", "value": ALICE, "type": "custom"},
        {"namespace": "CRMID", "value": ALICE, "type": "unregistered"},
        {"namespace": "Email", "value": ALICE_EMAIL, "type": "standard"},
        {"namespace": "Email", "value": ALICE_EMAIL, "type": "unregistered"},
    ]
    stored = rows(app)[row_id]
    assert stored.job_id == job["jobId"] and stored.sent_at is not None
    assert stored.identities is None and stored.error is None
    privacy_outcome = outcome(run)
    assert (privacy_outcome["status"], privacy_outcome["rows"], privacy_outcome["applied"]) == ("applied", 1, 1)
    assert privacy_outcome["details"] == {
        "mode": "privacy service",
        "delete_jobs": 1,
        "requests": 1,
        "pending": 0,
    }
    for text in (caplog.text, json.dumps(run.summary)):
        assert ALICE not in text and ALICE_EMAIL not in text
    # Sent once: the next run has nothing to send and reports no privacy outcome.
    again = run_job(app, "logs", force=True)
    assert again.status == "succeeded" and len(peer.privacy_jobs()) == 1
    assert all(item["name"] != "privacy" for item in again.summary["details"])


def test_an_outage_keeps_the_erasure_for_the_next_run_which_the_guardrail_does_not_hold_back(
    app: Flask, peer: PlatformPeer, provisioned: Any, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    row_id = queue(app, ALICE, ALICE_EMAIL)
    peer.add_fault(path="privacy", status=503, times=ATTEMPTS)
    caplog.set_level(logging.DEBUG)
    down = run_job(app, "logs")
    assert down.status == "failed" and down.error is not None
    assert down.error.startswith("privacy: failed: 1 of 1 delete jobs not sent (POST /data/core/privacy/jobs: HTTP 503")
    assert down.error.endswith("the next run sends them again")
    assert peer.privacy_jobs() == [] and sleeps.count(1.0) == ATTEMPTS - 1  # Retry-After honoured
    stored = rows(app)[row_id]
    assert stored.sent_at is None and stored.job_id is None and stored.identities is not None
    assert stored.error is not None and "HTTP 503" in stored.error
    for text in (stored.error, caplog.text, json.dumps(down.summary)):
        assert ALICE not in text and ALICE_EMAIL not in text
    # The streams ran minutes ago: the guardrail refuses them, but not the erasure.
    up = run_job(app, "logs")
    assert up.status == "succeeded", up.error
    assert {item["name"]: item["status"] for item in up.summary["details"]} == {
        "broadlog": "skipped",
        "trackinglog": "skipped",
        "quarantine": "skipped",
        "preferences": "skipped",
        "privacy": "applied",
    }
    (job,) = peer.privacy_jobs()
    stored = rows(app)[row_id]
    assert stored.job_id == job["jobId"] and stored.identities is None and stored.error is None
    # With nothing to send, a run within the interval is refused as before.
    assert run_job(app, "logs").status == "refused"


def test_a_refusal_quoting_the_identity_is_stored_without_it(
    app: Flask, peer: PlatformPeer, provisioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    row_id = queue(app, ALICE, ALICE_EMAIL)

    def refuse(platform: Any, body: dict[str, Any]) -> dict[str, str]:
        raise PermanentError(
            f"POST /data/core/privacy/jobs: HTTP 400: invalid value {ALICE} for CRMID; {ALICE_EMAIL.upper()} unknown"
        )

    monkeypatch.setattr(export_privacy, "create_jobs", refuse)
    run = run_job(app, "logs")
    assert run.status == "failed"
    stored = rows(app)[row_id]
    assert stored.error == (
        "POST /data/core/privacy/jobs: HTTP 400: invalid value (identity) for CRMID; (identity) unknown"
    )
    assert ALICE not in (run.error or "") and stored.identities is not None


def test_erasures_go_in_requests_of_at_most_the_batch_size_one_regulation_each(
    app: Flask, peer: PlatformPeer, provisioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_privacy, "BATCH", 2)
    first = queue(app, crm_id(1))
    ccpa = queue(app, crm_id(9), "bob.durand@example.com", regulation="ccpa")
    later = [queue(app, crm_id(n)) for n in (2, 3, 4)]
    run = run_job(app, "logs", streams=["broadlog"])
    assert run.status == "succeeded", run.error
    jobs = peer.privacy_jobs()
    assert sorted(job["userKey"] for job in jobs) == sorted(f"pushgate-{n}" for n in [first, ccpa, *later])
    assert {job["userKey"]: job["regulation"] for job in jobs}[f"pushgate-{ccpa}"] == "ccpa"
    # Batches of two in id order, [gdpr, ccpa] [gdpr, gdpr] [gdpr]: one request per regulation of each.
    requests: dict[str, list[str]] = {}
    for job in jobs:
        requests.setdefault(job["requestId"], []).append(job["userKey"])
    assert sorted(len(keys) for keys in requests.values()) == [1, 1, 1, 2]
    assert outcome(run)["details"]["requests"] == 4
    assert {job["userIds"][0]["value"] for job in jobs} == {crm_id(n) for n in (1, 2, 3, 4, 9)}
    assert all(row.job_id and row.identities is None for row in rows(app).values())


def test_a_row_sealed_under_another_key_is_reported_and_the_others_are_sent(
    app: Flask, peer: PlatformPeer, provisioned: Any
) -> None:
    stranger = SecretBox(Fernet.generate_key())
    with runtime_of(app).sessions.begin() as session:
        lost = PrivacyRequest(identities=stranger.seal({"external_id": ALICE, "email": None}))
        session.add(lost)
        session.flush()
        lost_id = lost.id
    sent_id = queue(app, crm_id(2))
    run = run_job(app, "logs", streams=["broadlog"])
    assert run.status == "failed"
    assert "1 of 2 delete jobs not sent (stored credentials cannot be decrypted" in (run.error or "")
    stored = rows(app)
    assert stored[lost_id].sent_at is None and "PUSHGATE_SECRET_KEY" in (stored[lost_id].error or "")
    assert stored[sent_id].job_id and [job["userKey"] for job in peer.privacy_jobs()] == [f"pushgate-{sent_id}"]


# -- the request itself --------------------------------------------------------------------------


def test_each_identity_goes_in_the_form_each_store_reads() -> None:
    assert privacy.user_ids("CRMID", ALICE) == (
        {"namespace": "CRMID", "value": ALICE, "type": "custom"},
        {"namespace": "CRMID", "value": ALICE, "type": "unregistered"},
    )
    assert privacy.user_ids("Email", ALICE_EMAIL)[0] == {"namespace": "Email", "value": ALICE_EMAIL, "type": "standard"}
    body = privacy.delete_body("ORG@AdobeOrg", [privacy.User("pushgate-7", privacy.user_ids("CRMID", ALICE))], "gdpr")
    assert body == {
        "companyContexts": [{"namespace": "imsOrgID", "value": "ORG@AdobeOrg"}],
        "users": [{"key": "pushgate-7", "action": ["delete"], "userIDs": list(privacy.user_ids("CRMID", ALICE))}],
        "include": ["profileService", "identity", "aepDataLake"],
        "expandIds": False,
        "priority": "normal",
        "regulation": "gdpr",
    }
    with pytest.raises(ValueError, match="1 to 1000 users"):
        privacy.delete_body("ORG@AdobeOrg", [], "gdpr")


def test_identities_are_masked_in_messages_even_when_cut_short() -> None:
    assert privacy.without("bad CRM-004211 and Alice.Martin@Example.com", [ALICE, ALICE_EMAIL, None]) == (
        "bad (identity) and (identity)"
    )
    assert privacy.without("value alice.mar…", [ALICE_EMAIL]) == "value (identity)…"
    assert privacy.without("HTTP 403: for CRM-0042… (check the credentials)", [ALICE]) == (
        "HTTP 403: for (identity)… (check the credentials)"
    )
    assert privacy.without("nothing to hide", [ALICE]) == "nothing to hide"


def test_the_devices_ecids_follow_the_person_ids_within_the_limit() -> None:
    from sync.platform.privacy import MAX_IDS, user_ids
    from tests.values import crm_id, ecid

    devices = [ecid(n) for n in range(8)]
    ids = user_ids("CRMID", crm_id(7), "ada.lovelace@example.com", devices)
    assert len(ids) == MAX_IDS
    assert [i["namespace"] for i in ids[:4]] == ["CRMID", "CRMID", "Email", "Email"]
    assert ids[4:] == tuple({"namespace": "ECID", "value": e, "type": "standard"} for e in devices[: MAX_IDS - 4])


def test_an_erasure_over_the_api_reaches_the_platform_with_the_next_sync_logs(
    app: Flask, peer: PlatformPeer, provisioned: Any, client: Any, keys: Any, runner: Any
) -> None:
    from domain.subscriptions import Registration, register
    from tests.factories import make_app
    from tests.values import ecid, fcm_token

    ids = make_app(app)
    device = ecid("alice-phone")
    assert (
        client.put(f"/api/v1/profiles/{ALICE}", json={"email": ALICE_EMAIL}, headers=keys.marketer).status_code == 201
    )
    with runtime_of(app).sessions.begin() as session:
        registration = Registration(
            app_id=ids["id"],
            platform="android",
            token=fcm_token("alice-phone"),
            sdk="campaign-classic",
            push_provider="fcm",
            user_key=ALICE,
            sets_user_key=True,
            ecid=device,
        )
        register(session, registration, reconciliation_field="external_id")
    assert client.delete(f"/api/v1/profiles/{ALICE}", headers=keys.admin).status_code == 204

    result = runner.invoke(args=["sync", "logs"])
    assert result.exit_code == 0, result.output
    assert "privacy: 1 delete jobs sent, 0 pending" in result.output
    (job,) = peer.privacy_jobs()
    assert {"namespace": "ECID", "value": device, "type": "standard"} in job["userIds"]
    assert {"namespace": "Email", "value": ALICE_EMAIL, "type": "standard"} in job["userIds"]
    (stored,) = rows(app).values()
    assert stored.identities is None and stored.job_id == job["jobId"]
