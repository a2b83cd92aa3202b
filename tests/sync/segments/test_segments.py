"""The segment import end to end: exports in Azurite become audiences, exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from flask import Flask
from sqlalchemy import create_engine, func, insert, select

from domain.analysis import analyse
from domain.deliveries import DeliveryCreate, create_delivery
from push import payloads
from store.models import Audience, AudienceImport, AudienceMember, BroadLog, Profile, Subscription, SyncFile
from store.queries import audience_staging
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.sync.segments.exports import (
    ID,
    LATER,
    SEG_CART,
    SEG_LAPSED,
    SEG_VIP,
    audience,
    csv_bytes,
    export_name,
    gz,
    jsonl_bytes,
    ledger,
    make_profiles,
    members,
    rejects,
    run_import,
    single,
    snapshot,
    upload,
)
from tests.values import crm_id, fcm_token

PUSH = "https://platform.adobe.io/data/foundation/dulepolicy/marketingActions/custom/pushTargeting"
CUSTOMERS = [crm_id(n) for n in range(1, 13)]


def sync_config(tmp_path: Path, names: dict[str, str] | None = None, deny_column: str | None = None) -> Path:
    content: dict[str, Any] = {"audiences": {"names": names or {}}}
    if deny_column:
        content["governance"] = {
            "labels": {"fields": {deny_column: ["C4"]}},
            "policies": [
                {
                    "name": "No push targeting of C4 data",
                    "status": "ENABLED",
                    "marketingActionRefs": [PUSH],
                    "deny": {"label": "C4"},
                }
            ],
        }
    path = tmp_path / "sync.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def upload_realistic_export(container: ContainerClient) -> None:
    """Two exports of the same day: VIP split in two gzip parts; cart and lapsed in one multi-segment CSV."""
    upload(
        container,
        export_name(SEG_VIP, ext=".csv.gz"),
        gz(
            single(
                [
                    ("CRM-000001", "realized"),
                    ("CRM-000002", "existing"),
                    ("zz-unknown", "realized"),
                    ("CRM-000003", "existing"),
                ]
            )
        ),
    )
    upload(
        container,
        export_name(SEG_VIP, part=2, ext=".csv.gz"),
        gz(
            single([("CRM-000004", "realized"), ("CRM-000005", "exited"), ("", "realized"), ("CRM-000006", "realized")])
        ),
    )
    columns = [
        ID,
        "person.name.firstName",
        f"segmentMembership.ups.{SEG_CART}.status",
        f"segmentMembership.ups.{SEG_LAPSED}.status",
    ]
    rows = [
        ("CRM-000001", "Ann", "realized", ""),
        ("CRM-000007", "Bob", "existing", "exited"),
        ("CRM-000008", "Cy", "", "realized"),
        ("zz-other", "Dee", "realized", ""),
        ("CRM-000009", "Ed", "exited", "existing"),
    ]
    upload(container, export_name(SEG_CART), csv_bytes(columns, rows))
    upload(container, "exports/manifest-0123.json", b"{}")


def test_a_realistic_export_becomes_audiences_once(app: Flask, container: ContainerClient, tmp_path: Path) -> None:
    make_profiles(app, *CUSTOMERS)
    upload_realistic_export(container)
    config = sync_config(tmp_path, names={SEG_VIP: "VIP customers"})

    run = run_import(app, sync_config=config)

    assert run.status == "succeeded", run.error
    assert members(app, SEG_VIP) == {
        "CRM-000001": "realized",
        "CRM-000002": "existing",
        "CRM-000003": "existing",
        "CRM-000004": "realized",
        "CRM-000006": "realized",
    }
    assert members(app, SEG_CART) == {"CRM-000001": "realized", "CRM-000007": "existing"}
    assert members(app, SEG_LAPSED) == {"CRM-000008": "realized", "CRM-000009": "existing"}
    vip, cart = audience(app, SEG_VIP), audience(app, SEG_CART)
    assert vip is not None and cart is not None
    assert vip.name == "VIP customers" and vip.last_import_at is not None
    assert cart.name == f"Azure_Blob_Campaign: {SEG_CART}"
    part1, part2 = export_name(SEG_VIP, ext=".csv.gz"), export_name(SEG_VIP, part=2, ext=".csv.gz")
    assert rejects(app, run.id) == [
        (part1, 4, "zz-unknown", "no profile with external_id zz-unknown"),
        (part2, 4, None, "empty identity"),
        (export_name(SEG_CART), 5, "zz-other", "no profile with external_id zz-other"),
    ]
    with runtime_of(app).sessions() as session:  # a segment never creates a profile
        assert session.scalar(select(func.count()).select_from(Profile)) == len(CUSTOMERS)
        imports = {
            (row.file_id, row.audience_id): (row.entered, row.existing, row.exited)
            for row in session.scalars(select(AudienceImport))
        }
        files = {f.name: f for f in session.scalars(select(SyncFile))}
    assert {name: (f.status, f.rows, f.applied, f.rejected) for name, f in files.items()} == {
        part1: ("applied", 4, 3, 1),
        part2: ("applied", 4, 3, 1),
        export_name(SEG_CART): ("applied", 5, 4, 1),
    }
    assert files[part1].details["export"] == files[part2].details["export"] == part1
    assert imports[(files[part1].id, vip.id)] == (1, 2, 0)
    assert imports[(files[part2].id, vip.id)] == (2, 0, 1)
    assert imports[(files[export_name(SEG_CART)].id, cart.id)] == (1, 1, 1)
    assert run.summary["applied_files"] == 3 and run.summary["rejected"] == 3
    assert any(d["name"] == "1 blob(s) not named like a segment export" for d in run.summary["details"])

    before = snapshot(app)
    again = run_import(app, sync_config=config)
    assert again.status == "succeeded"
    assert snapshot(app) == before
    assert again.summary["files"] == 0
    assert [d["name"] for d in again.summary["details"] if d["status"] == "skipped"][-1] == (
        "3 file(s) already in the ledger"
    )


def test_incremental_exports_apply_changes(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *CUSTOMERS)
    upload(
        container,
        export_name(SEG_VIP),
        single([("CRM-000001", "realized"), ("CRM-000002", "realized"), ("CRM-000003", "realized")]),
    )
    assert run_import(app).status == "succeeded"
    with runtime_of(app).sessions() as session:
        first_entry = session.scalar(select(AudienceMember.entered_at).where(AudienceMember.status == "realized"))
    upload(
        container,
        export_name(SEG_VIP, stamp=LATER),
        single([("CRM-000001", "exited"), ("CRM-000002", "existing"), ("CRM-000004", "realized")]),
    )
    assert run_import(app).status == "succeeded"
    # c03 not named by an incremental export: unchanged
    assert members(app, SEG_VIP) == {
        "CRM-000001": "exited",
        "CRM-000002": "existing",
        "CRM-000003": "realized",
        "CRM-000004": "realized",
    }
    upload(container, export_name(SEG_VIP, stamp="20261203_060000"), single([("CRM-000001", "realized")]))
    assert run_import(app).status == "succeeded"
    with runtime_of(app).sessions() as session:
        back = session.scalar(
            select(AudienceMember)
            .join(Profile, Profile.id == AudienceMember.profile_id)
            .where(Profile.external_id == "CRM-000001")
        )
    assert back is not None and back.status == "realized"
    assert first_entry is not None and back.entered_at > first_entry  # came back: entered again


def test_full_exports_replace_membership(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *CUSTOMERS)
    upload(
        container,
        export_name(SEG_VIP),
        single([("CRM-000001", "realized"), ("CRM-000002", "realized"), ("CRM-000003", "realized")]),
    )
    upload(
        container, export_name(SEG_VIP, stamp=LATER), single([("CRM-000002", "existing"), ("CRM-000004", "realized")])
    )
    run = run_import(app, segments_export_mode="full")
    assert run.status == "succeeded"
    assert members(app, SEG_VIP) == {
        "CRM-000001": "exited",
        "CRM-000002": "existing",
        "CRM-000003": "exited",
        "CRM-000004": "realized",
    }
    later = next(d for d in run.summary["details"] if d["name"] == export_name(SEG_VIP, stamp=LATER))
    assert later["details"]["segments"][SEG_VIP] == {"realized": 1, "existing": 1, "exited": 0, "exited_unnamed": 2}
    upload(container, export_name(SEG_VIP, stamp="20261203_060000"), single([]))  # nobody qualifies any more
    assert run_import(app, segments_export_mode="full").status == "succeeded"
    assert set(members(app, SEG_VIP).values()) == {"exited"}


def test_a_replaced_file_is_a_new_file(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *CUSTOMERS)
    name = export_name(SEG_VIP)
    first = upload(container, name, single([("CRM-000001", "realized")]))
    assert run_import(app).status == "succeeded"
    second = upload(container, name, single([("CRM-000001", "exited"), ("CRM-000002", "realized")]))
    assert first != second
    assert run_import(app).status == "succeeded"
    assert members(app, SEG_VIP) == {"CRM-000001": "exited", "CRM-000002": "realized"}
    with runtime_of(app).sessions() as session:
        assert sorted(session.scalars(select(SyncFile.etag).where(SyncFile.name == name))) == sorted([first, second])


def unchanged_tables(app: Flask) -> dict[str, Any]:
    tables = snapshot(app)
    tables.pop("sync_file")
    return tables


def test_a_file_without_the_identity_column_fails_and_changes_nothing(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *CUSTOMERS)
    name = export_name(SEG_VIP)
    upload(
        container, name, csv_bytes(["email", "segmentMembership.status"], [("alice.martin@example.com", "realized")])
    )
    before = unchanged_tables(app)
    run = run_import(app)
    assert run.status == "failed"
    assert run.error == f"{name}: failed: missing identity column 'crmId' (columns: email, segmentMembership.status)"
    assert ledger(app) == {
        name: ("failed", "missing identity column 'crmId' (columns: email, segmentMembership.status)")
    }
    assert unchanged_tables(app) == before and audience(app, SEG_VIP) is None
    assert run_import(app).summary["files"] == 0  # not tried again by itself
    retried = run_import(app, options={"retry_failed": True})
    assert retried.status == "failed"
    with runtime_of(app).sessions() as session:  # the ledger row was replaced, not added to
        rows = session.scalars(select(SyncFile).where(SyncFile.name == name)).all()
    assert [(row.status, row.run_id) for row in rows] == [("failed", retried.id)]


def test_too_many_unreadable_rows_fail_the_file(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *CUSTOMERS)
    name = export_name(SEG_VIP)
    good = [f"{crm_id(n)},realized" for n in range(1, 9)]
    upload(
        container,
        name,
        (
            "crmId,segmentMembership.status\n" + "\n".join([*good, "CRM-000009", "CRM-000010,realized,x"]) + "\n"
        ).encode(),
    )
    before = unchanged_tables(app)
    run = run_import(app, sync_max_unreadable_fraction=0.1)
    assert run.status == "failed"
    assert ledger(app)[name] == (
        "failed",
        "2 of 10 rows unreadable (more than 10.00% allowed); first at line 10: unreadable row: 1 fields, expected 2",
    )
    assert unchanged_tables(app) == before
    assert rejects(app, run.id) == []  # the rejects of a file that changed nothing are not kept
    run = run_import(app, sync_max_unreadable_fraction=0.2, options={"retry_failed": True})
    assert run.status == "succeeded"
    assert len(members(app, SEG_VIP)) == 8
    assert [r[3] for r in rejects(app, run.id)] == [
        "unreadable row: 1 fields, expected 2",
        "unreadable row: 3 fields, expected 2",
    ]


def test_a_failed_part_holds_back_its_whole_export(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *CUSTOMERS)
    upload(container, export_name(SEG_VIP), single([("CRM-000001", "realized")]))
    upload(container, export_name(SEG_VIP, part=2), b"no,header,we,know\n")
    run = run_import(app)
    assert run.status == "failed" and members(app, SEG_VIP) == {}
    assert ledger(app) == {export_name(SEG_VIP, part=2): ("failed", ledger(app)[export_name(SEG_VIP, part=2)][1])}
    again = run_import(app)
    assert [(d["name"], d["reason"]) for d in again.summary["details"] if d["name"] == export_name(SEG_VIP)] == [
        (
            export_name(SEG_VIP),
            f"not applied while {export_name(SEG_VIP, part=2)} is failed: replace that file, or retry failed files",
        )
    ]
    upload(container, export_name(SEG_VIP, part=2), single([("CRM-000002", "existing")]))  # the fixed part
    assert run_import(app).status == "succeeded"
    assert members(app, SEG_VIP) == {"CRM-000001": "realized", "CRM-000002": "existing"}


def test_an_export_waits_for_its_missing_part(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *CUSTOMERS)
    upload(container, export_name(SEG_VIP, part=2), single([("CRM-000002", "realized")]))
    run = run_import(app)
    assert run.status == "succeeded" and members(app, SEG_VIP) == {}
    assert run.summary["details"][0]["reason"] == f"waiting for part 1 of {export_name(SEG_VIP)}"
    upload(container, export_name(SEG_VIP), single([("CRM-000001", "realized")]))
    assert run_import(app).summary["applied_files"] == 2
    assert members(app, SEG_VIP) == {"CRM-000001": "realized", "CRM-000002": "realized"}


def test_a_governance_deny_blocks_the_file_and_the_audience_stays(
    app: Flask, container: ContainerClient, tmp_path: Path
) -> None:
    make_profiles(app, *CUSTOMERS)
    config = sync_config(tmp_path, deny_column="_acme.adNetwork.interestSegments")
    upload(container, export_name(SEG_VIP), single([("CRM-000001", "realized"), ("CRM-000002", "realized")]))
    assert run_import(app, sync_config=config).status == "succeeded"
    before = unchanged_tables(app)
    name = export_name(SEG_VIP, stamp=LATER)
    labelled = single(
        [("CRM-000001", "exited"), ("CRM-000003", "realized")], extra=("_acme.adNetwork.interestSegments",)
    )
    upload(container, name, labelled)
    run = run_import(app, sync_config=config)
    reason = 'blocked by policy "No push targeting of C4 data" (deny C4; file labels C4)'
    assert (run.status, run.error) == ("failed", f"{name}: blocked: {reason}")
    assert ledger(app)[name] == ("blocked", reason)
    assert unchanged_tables(app) == before
    assert members(app, SEG_VIP) == {"CRM-000001": "realized", "CRM-000002": "realized"}


def test_matching_on_email_rejects_unknown_and_shared_emails(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, crm_id(1), email="ann.lee@example.com")
    make_profiles(app, crm_id(2), crm_id(3), email="the.lees@example.com")
    column = "personalEmail.address"
    data = csv_bytes(
        [column, "segmentMembership.status"],
        [("ann.lee@example.com", "realized"), ("the.lees@example.com", "realized"), ("new@example.com", "realized")],
    )
    upload(container, export_name(SEG_VIP), data)
    run = run_import(app, reconciliation_field="email", segments_identity_column=column)
    assert run.status == "succeeded"
    assert members(app, SEG_VIP) == {crm_id(1): "realized"}
    assert [(line, reason) for _, line, _, reason in rejects(app, run.id)] == [
        (3, "ambiguous: 2 profiles with email the.lees@example.com"),
        (4, "no profile with email new@example.com"),
    ]
    with runtime_of(app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(Profile)) == 3


def test_json_lines_export(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *CUSTOMERS)
    records = [
        {
            "crmId": "CRM-000001",
            "segmentMembership": {"ups": {SEG_VIP: {"status": "realized"}, SEG_CART: {"status": "exited"}}},
        },
        {"crmId": "CRM-000002", "segmentMembership": {"ups": {SEG_CART: {"status": "existing"}}}},
    ]
    upload(container, export_name(SEG_VIP, ext=".json.gz"), gz(jsonl_bytes(records)))
    assert run_import(app).status == "succeeded"
    assert members(app, SEG_VIP) == {"CRM-000001": "realized"}
    assert members(app, SEG_CART) == {"CRM-000002": "existing"}


def test_a_profile_named_twice_takes_the_last_status(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *CUSTOMERS)
    upload(
        container,
        export_name(SEG_VIP),
        single([("CRM-000001", "existing"), ("CRM-000002", "realized"), ("CRM-000001", "realized")]),
    )
    assert run_import(app).status == "succeeded"
    assert members(app, SEG_VIP) == {"CRM-000001": "realized", "CRM-000002": "realized"}


def test_the_store_stays_writable_while_an_export_is_read(app: Flask, container: ContainerClient) -> None:
    customers = [crm_id(n) for n in range(12_000)]
    make_profiles(app, *customers)
    upload(container, export_name(SEG_VIP), single([(c, "realized") for c in customers]))
    url = runtime_of(app).settings.database_url
    # SQLite: no waiting for a lock at all; a write lock held by the import would fail this at once
    writer = create_engine(url, connect_args={"timeout": 0}) if url.startswith("sqlite") else create_engine(url)
    written: list[int] = []

    def write_meanwhile(rows: int) -> None:
        with writer.begin() as conn:
            conn.execute(
                insert(Audience).values(
                    name=f"made during the import {len(written)}", created_at=utcnow(), updated_at=utcnow()
                )
            )
        written.append(rows)

    try:
        run = run_import(app, progress=write_meanwhile)
    finally:
        writer.dispose()
    assert run.status == "succeeded"
    assert len(written) >= 2 and len(members(app, SEG_VIP)) == len(customers)


def test_a_crash_while_applying_leaves_nothing_and_the_next_run_applies(
    app: Flask, container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_profiles(app, *CUSTOMERS)
    upload_realistic_export(container)
    for name in (export_name(SEG_VIP, ext=".csv.gz"), export_name(SEG_VIP, part=2, ext=".csv.gz")):
        container.delete_blob(name)  # only the two-segment export: the crash comes between its segments
    before = snapshot(app)
    calls: list[int] = []
    original = audience_staging.Staging.exit_members

    def crash_on_second_segment(self: audience_staging.Staging, *args: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the process died here")
        return original(self, *args)

    monkeypatch.setattr(audience_staging.Staging, "exit_members", crash_on_second_segment)
    with pytest.raises(RuntimeError):
        run_import(app)
    assert snapshot(app) == before
    monkeypatch.undo()
    assert run_import(app).summary["applied_files"] == 1
    assert members(app, SEG_LAPSED) == {"CRM-000008": "realized", "CRM-000009": "existing"}


def test_a_delivery_to_an_imported_audience_targets_its_members(app: Flask, container: ContainerClient) -> None:
    ids = make_profiles(app, *CUSTOMERS)
    made = make_app(app)
    with runtime_of(app).sessions.begin() as session:
        for external_id in CUSTOMERS:
            session.add(
                Subscription(
                    app_id=made["id"],
                    platform="android",
                    token=fcm_token(external_id),
                    sdk="campaign-classic",
                    push_provider="fcm",
                    profile_id=ids[external_id],
                )
            )
    upload(
        container,
        export_name(SEG_VIP),
        single([("CRM-000001", "realized"), ("CRM-000002", "existing"), ("CRM-000003", "exited")]),
    )
    upload(container, export_name(SEG_VIP, stamp=LATER), single([("CRM-000002", "exited"), ("CRM-000004", "realized")]))
    assert run_import(app).status == "succeeded"
    vip = audience(app, SEG_VIP)
    assert vip is not None
    with runtime_of(app).sessions.begin() as session:
        delivery, _ = create_delivery(
            session,
            DeliveryCreate.model_validate(
                {"app_id": made["id"], "name": "VIP", "message": {"title": "Hi"}, "target": {"audience": vip.id}}
            ),
            payloads=payloads,
        )
        analyse(session, delivery)
        targeted = session.scalars(select(BroadLog.profile_id).where(BroadLog.delivery_id == delivery.id)).all()
    assert sorted(targeted) == sorted([ids["CRM-000001"], ids["CRM-000004"]])
