"""Issue 14, item 6: erasing a profile erases the person everywhere.

Before the fix ``DELETE /api/v1/profiles/{id}`` left the person's subscriptions enabled with their
token, IMEI, device name, ECID and params; broadLog kept the token and the subscription; delivery
targets kept the external id; sync rejects, personalisation rows and Campaign Standard identity
rows were untouched. The test searches every column of every table afterwards.
"""

from __future__ import annotations

from typing import Any

import httpx
from flask import Flask
from sqlalchemy import select

from domain.quarantine import record_hard_error
from domain.subscriptions import Registration, register
from store.models import (
    Base,
    LookupRow,
    LookupTable,
    PrivacyRequest,
    PushIdentity,
    StandardRegistration,
    SyncFile,
    SyncReject,
    SyncRun,
)
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app, make_sent_message, push_ids
from tests.values import ORG, crm_id, ecid, fcm_token

PERSON = crm_id(7)
EMAIL = "ada.lovelace@example.com"
TOKEN = fcm_token("ada-phone")
IMEI = "356938035643809"
DEVICE = "Ada's Pixel 8"
ECID = ecid("ada-phone")


def _everything(app: Flask) -> list[tuple[str, str, str]]:
    """Every (table, column, value as text) of the database."""
    found = []
    with runtime_of(app).engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is not None:
                        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                        found.append((table.name, column, text))
    return found


def _person_everywhere(app: Flask, keys: Any, http: httpx.Client) -> None:
    ids = make_app(app)
    assert http.put(f"/api/v1/profiles/{PERSON}", json={"email": EMAIL, "first_name": "Ada"}, headers=keys.marketer)
    rt = runtime_of(app)
    with rt.sessions.begin() as session:
        sub_id, _ = register(
            session,
            Registration(
                app_id=ids["id"],
                platform="android",
                token=TOKEN,
                sdk="campaign-classic",
                push_provider="fcm",
                user_key=PERSON,
                sets_user_key=True,
                ecid=ECID,
                device={"device_imei": IMEI, "device_name": DEVICE},
                additional_params={"loyalty": "gold", "contact": EMAIL},
            ),
            reconciliation_field="external_id",
        )
        record_hard_error(
            session, app_id=ids["id"], platform="android", token=TOKEN, reason=1, text="x", unregistered_at=utcnow()
        )
        session.add(StandardRegistration(app_id=ids["id"], ecid=ECID, push_platform="fcm", fields={}))
        session.add(PushIdentity(org_id=ORG, ecid=ECID, token=TOKEN))
        run = SyncRun(job="profiles", trigger="cli", status="failed", summary={"files": [{"examples": [f"x,{EMAIL}"]}]})
        session.add(run)
        session.flush()
        session.add(SyncReject(run_id=run.id, file="p.csv", line=3, identity=EMAIL, reason=f"no profile with {EMAIL}"))
        session.add(
            SyncFile(
                job="profiles",
                source="sftp",
                name="p.csv",
                etag="1",
                run_id=run.id,
                status="failed",
                details={"examples": [f"{PERSON},{EMAIL},Ada"]},
            )
        )
        table = LookupTable(name="vip", key_column="crm_id", columns=["email"])
        session.add(table)
        session.flush()
        session.add(LookupRow(table_id=table.id, key=PERSON, fields={"email": EMAIL}))
    broadlog_id, delivery_id = make_sent_message(app, ids["id"], sub_id)
    _mid, did = push_ids(app, broadlog_id, delivery_id)
    assert http.get(f"/r/?id=h{broadlog_id:x},{did},2").status_code == 200
    targeted = {"app_id": ids["id"], "name": "For Ada", "message": {"body": "hi"}, "target": {"profiles": [PERSON]}}
    assert http.post("/api/v1/deliveries", json=targeted, headers=keys.marketer).status_code == 201


def test_no_column_of_any_table_names_the_person_after_erasure(app: Flask, live_server: str, keys: Any) -> None:
    secrets = (PERSON, EMAIL, TOKEN, IMEI, DEVICE, ECID)
    with httpx.Client(base_url=live_server, timeout=10) as http:
        _person_everywhere(app, keys, http)
        before = {(t, c) for t, c, text in _everything(app) if any(s in text for s in secrets)}
        assert len(before) >= 10, before  # the scenario really put the person in many places
        delivery_counts_before = http.get("/api/v1/deliveries", headers=keys.viewer).json()["items"]
        assert http.delete(f"/api/v1/profiles/{PERSON}", headers=keys.admin).status_code == 204
        delivery_counts_after = http.get("/api/v1/deliveries", headers=keys.viewer).json()["items"]
    left = [(t, c, text[:80]) for t, c, text in _everything(app) if any(s in text for s in secrets)]
    assert left == []
    # Queued for the Platform's Privacy Service, sealed: only the secret key opens it.
    rt = runtime_of(app)
    with rt.sessions() as session:
        (queued,) = session.scalars(select(PrivacyRequest)).all()
        assert queued.sent_at is None and queued.identities is not None
        assert rt.box.open(queued.identities) == {"external_id": PERSON, "email": EMAIL, "ecids": [ECID]}
    # The history stays countable: same deliveries, same counts.
    assert [d["counts"] for d in delivery_counts_after] == [d["counts"] for d in delivery_counts_before]
