"""The profiles job end to end: files on a local sFTP server (paramiko's own server side, on
loopback) become profiles and personalisation tables; archives, rejects files, the ledger."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from domain.subscriptions import Registration, register
from store.models import LookupRow, LookupTable, Profile, Subscription, SyncFile, SyncReject
from sync.peers.sftp import SftpPeer
from sync.sources import sftp as sftp_source
from tests.conftest import runtime_of
from tests.factories import make_app, make_profile
from tests.sync.profiles.conftest import MTIME, put, run_profiles
from tests.values import crm_id, fcm_token

PROFILES = (
    "external_id,email,first_name,locale,push_consent,tier,offer_code\n"
    "CRM-000001,ann.lee@example.com,Ann,en_us,Y,silver,K1\n"
    "CRM-000002,,Bob,,n,platinum,\n"
    "CRM-000003,not-an-email,Cy,,y,,\n"
    ",noah.bell@example.com,Noah,,,,\n"
    "CRM-000004,diane.roy@example.com,Di,fr,maybe,,\n"
)


def _register(app: Flask, app_id: int, token: str, user_key: str) -> None:
    with runtime_of(app).sessions.begin() as session:
        register(
            session,
            Registration(
                app_id=app_id,
                platform="android",
                token=token,
                sdk="campaign-classic",
                push_provider="fcm",
                user_key=user_key,
                sets_user_key=True,
            ),
            reconciliation_field=runtime_of(app).settings.reconciliation_field,
        )


def _profiles(app: Flask) -> dict[str, Profile]:
    with runtime_of(app).sessions() as session:
        return {p.external_id: p for p in session.scalars(select(Profile))}


def _read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_a_profile_file_becomes_profiles_is_archived_and_its_bad_rows_come_back(
    app: Flask, peer: SftpPeer, sftp_root: Path
) -> None:
    ids = make_app(app)
    make_profile(
        app, crm_id(2), email="bob.dupont@example.com", attributes={"tier": "gold", "city": "Lyon"}, push_consent="y"
    )
    _register(app, ids["id"], fcm_token("ann's phone"), crm_id(1))  # registered before Campaign sent the profile
    put(sftp_root, "profiles_0412.csv", PROFILES)

    run = run_profiles(app, settings={"sync_max_unreadable_fraction": 0.25})

    assert run.status == "succeeded", run.error
    assert (run.summary["rows"], run.summary["applied"], run.summary["rejected"]) == (5, 2, 3)
    detail = run.summary["details"][0]
    assert detail["details"]["created"] == 1 and detail["details"]["updated"] == 1
    assert detail["details"]["linked"] == 1
    profiles = _profiles(app)
    assert sorted(profiles) == ["CRM-000001", "CRM-000002"]
    ann = profiles["CRM-000001"]
    assert (ann.email, ann.first_name, ann.locale, ann.push_consent) == ("ann.lee@example.com", "Ann", "en-US", "y")
    assert ann.attributes == {"tier": "silver", "offer_code": "K1"}
    bob = profiles["CRM-000002"]
    # An empty cell keeps the stored value; attributes are merged key by key.
    assert (bob.email, bob.first_name, bob.push_consent) == ("bob.dupont@example.com", "Bob", "n")
    assert bob.attributes == {"tier": "platinum", "city": "Lyon"}
    with runtime_of(app).sessions() as session:
        sub = session.scalars(select(Subscription).where(Subscription.token == fcm_token("ann's phone"))).one()
        assert sub.profile_id == ann.id
        ledger = session.scalars(select(SyncFile)).one()
        assert (ledger.source, ledger.name, ledger.status, ledger.job) == (
            "sftp",
            "profiles_0412.csv",
            "applied",
            "profiles",
        )
        assert (ledger.rows, ledger.applied, ledger.rejected) == (5, 2, 3)
        assert ledger.etag == f"{len(PROFILES)}-{MTIME}"
        rejects = session.scalars(select(SyncReject).order_by(SyncReject.line)).all()
        assert [(r.line, r.identity) for r in rejects] == [(4, "CRM-000003"), (5, None), (6, "CRM-000004")]
    # Archived, and the refused rows written back as CSV named after the file.
    assert not (sftp_root / "inbox" / "profiles_0412.csv").exists()
    assert (sftp_root / "inbox" / "archive" / "profiles_0412.csv").read_text() == PROFILES
    rows = _read_csv(sftp_root / "inbox" / "rejects" / "profiles_0412.rejects.csv")
    assert rows[0] == [
        "line",
        "external_id",
        "email",
        "first_name",
        "locale",
        "push_consent",
        "tier",
        "offer_code",
        "reason",
    ]
    assert [row[:2] for row in rows[1:]] == [["4", "CRM-000003"], ["5", ""], ["6", "CRM-000004"]]
    assert rows[1][-1].startswith("email: not an e-mail address")
    assert rows[2][-1] == "no external_id (external_id is empty)"
    assert rows[3][-1] == "push_consent: push_consent must be y, n or u"
    assert rows[1][1:-1] == ["CRM-000003", "not-an-email", "Cy", "", "y", "", ""]  # the original columns
    assert detail["details"]["rejects_file"] == "inbox/rejects/profiles_0412.rejects.csv"
    assert detail["details"]["archived_to"] == "inbox/archive/profiles_0412.csv"
    # Nothing left to take.
    again = run_profiles(app)
    assert again.status == "succeeded" and again.summary["details"] == []


def test_a_file_is_applied_exactly_once_even_when_it_comes_back(app: Flask, peer: SftpPeer, sftp_root: Path) -> None:
    put(sftp_root, "profiles.csv", "external_id,first_name\nCRM-000001,Ann\n")
    assert run_profiles(app).status == "succeeded"
    with runtime_of(app).sessions.begin() as session:
        session.scalars(select(Profile)).one().first_name = "Changed since"
    # The same file (same name, size and mtime) appears again, e.g. an archive step that failed.
    put(sftp_root, "profiles.csv", "external_id,first_name\nCRM-000001,Ann\n")
    run = run_profiles(app)
    assert run.status == "succeeded"
    assert run.summary["details"][0]["status"] == "skipped"
    assert run.summary["details"][0]["reason"].startswith("already applied in run ")
    assert _profiles(app)["CRM-000001"].first_name == "Changed since"
    assert not (sftp_root / "inbox" / "profiles.csv").exists()  # archived now
    # A new version of the file (other mtime) is a new file.
    put(sftp_root, "profiles.csv", "external_id,first_name\nCRM-000001,Ann\n", mtime=MTIME + 60)
    assert run_profiles(app).summary["applied"] == 1
    assert _profiles(app)["CRM-000001"].first_name == "Ann"
    assert (sftp_root / "inbox" / "archive" / "profiles.csv").exists()  # replaced in the archive


def test_a_file_applied_but_not_archived_is_archived_by_the_next_run(
    app: Flask, peer: SftpPeer, sftp_root: Path
) -> None:
    (sftp_root / "inbox" / "archive").write_text("a file where the archive folder should be")
    put(sftp_root, "profiles.csv", "external_id,first_name\nCRM-000001,Ann\n")
    run = run_profiles(app)
    assert run.status == "succeeded" and run.summary["applied"] == 1
    assert "is a file, not a folder" in run.summary["details"][0]["details"]["archive_error"]
    assert (sftp_root / "inbox" / "profiles.csv").exists()
    (sftp_root / "inbox" / "archive").unlink()
    with runtime_of(app).sessions.begin() as session:
        session.scalars(select(Profile)).one().first_name = "Changed since"
    run = run_profiles(app)
    assert run.summary["details"][0]["status"] == "skipped"
    assert run.summary["details"][0]["reason"].endswith("; archived now")
    assert (sftp_root / "inbox" / "archive" / "profiles.csv").exists()
    assert _profiles(app)["CRM-000001"].first_name == "Changed since"


def test_a_bad_file_changes_nothing_stays_in_the_inbox_and_is_retried_only_when_asked(
    app: Flask, peer: SftpPeer, sftp_root: Path
) -> None:
    make_profile(app, "CRM-000000", first_name="Zoe")
    text = (
        "external_id,first_name\n"
        + "".join(f"{crm_id(i)},Name {i}\n" for i in range(1, 98))
        + "CRM-000098\nCRM-000099,a,b\nCRM-000000,Z\n"
    )
    put(sftp_root, "profiles.csv", text)
    run = run_profiles(app)  # 2 of 100 rows unreadable: more than the default 1%
    assert run.status == "failed"
    assert run.error == "profiles.csv: failed: 2 of 100 rows unreadable (more than 1.00%)"
    assert run.summary["details"][0]["details"]["examples"] == [
        "line 99: 1 fields where the header has 2",
        "line 100: 3 fields where the header has 2",
    ]
    assert sorted(_profiles(app)) == ["CRM-000000"] and _profiles(app)["CRM-000000"].first_name == "Zoe"
    assert (sftp_root / "inbox" / "profiles.csv").exists()
    assert not (sftp_root / "inbox" / "archive").exists() and not (sftp_root / "inbox" / "rejects").exists()
    with runtime_of(app).sessions() as session:
        assert session.scalars(select(SyncReject)).all() == []
        assert session.scalars(select(SyncFile.status)).all() == ["failed"]
    # Later runs leave it alone, and say so.
    later = run_profiles(app)
    assert later.status == "succeeded"
    assert later.summary["details"][0]["status"] == "skipped"
    assert "left in the inbox until retried" in later.summary["details"][0]["reason"]
    # Retried with a looser threshold: applied once, with its two rejects.
    retried = run_profiles(app, settings={"sync_max_unreadable_fraction": 0.05}, retry_failed=True)
    assert retried.status == "succeeded", retried.error
    assert (retried.summary["applied"], retried.summary["rejected"]) == (98, 2)
    assert _profiles(app)["CRM-000000"].first_name == "Z" and len(_profiles(app)) == 98
    with runtime_of(app).sessions() as session:
        assert session.scalars(select(SyncFile.status)).all() == ["applied"]


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        (
            "profiles.csv",
            "id,email\nCRM-000001,alice.martin@example.com\n",
            "no external_id column (expected a column named 'external_id')",
        ),
        ("profiles.csv", "", "empty file: no header line"),
        (
            "profiles.csv",
            "external_id,email,email\nCRM-000001,alice.martin@example.com,alice@example.com\n",
            "column 'email' appears twice in the header",
        ),
        ("profiles.csv.gz", "external_id\nCRM-000001\n", None),  # fine: control case
    ],
)
def test_files_that_cannot_be_applied_fail_whole(
    app: Flask, peer: SftpPeer, sftp_root: Path, name: str, text: str, reason: str | None
) -> None:
    put(sftp_root, name, text)
    run = run_profiles(app)
    if reason is None:
        assert run.status == "succeeded" and run.summary["applied"] == 1
        return
    assert run.status == "failed"
    assert run.error == f"{name}: failed: {reason}"
    assert (sftp_root / "inbox" / name).exists() and _profiles(app) == {}


def test_undecodable_or_corrupt_files_fail(app: Flask, peer: SftpPeer, sftp_root: Path) -> None:
    (sftp_root / "inbox" / "profiles_a.csv").write_bytes(b"external_id,first_name\nCRM-000001,Ren\xe9\n")
    (sftp_root / "inbox" / "profiles_b.csv.gz").write_bytes(b"not gzip at all")
    (sftp_root / "inbox" / "profiles_c.csv").write_bytes(b"external_id,first_name\nCRM-000001,Ann\n")
    run = run_profiles(app)
    outcomes = {d["name"]: (d["status"], d["reason"]) for d in run.summary["details"]}
    assert outcomes["profiles_a.csv"] == ("failed", "not UTF-8 text")
    assert outcomes["profiles_b.csv.gz"][0] == "failed"
    assert outcomes["profiles_b.csv.gz"][1].startswith("not a complete gzip file")
    assert outcomes["profiles_c.csv"][0] == "applied"  # one bad file does not stop the others
    assert list(_profiles(app)) == ["CRM-000001"]


def test_gzip_semicolons_a_column_mapping_and_duplicate_rows(app: Flask, peer: SftpPeer, sftp_root: Path) -> None:
    text = (
        "ID;mail;Tier;email;ignored\n"
        "CRM-000001;carla.diaz@example.com;gold;x;1\n"
        "CRM-000002;chris.evans@example.com;;x;2\n"
        "CRM-000001;;platinum;x;3\n"
    )
    put(sftp_root, "profiles_full.csv.gz", text)
    mapping = {"ID": "external_id", "mail": "email", "Tier": "attributes.loyalty_tier", "ignored": ""}
    run = run_profiles(app, settings={"sftp_profile_mapping": mapping})
    assert run.status == "succeeded", run.error
    profiles = _profiles(app)
    # "email" is not used: the mapping sends another column to the email field.
    assert profiles[crm_id(1)].email == "carla.diaz@example.com"
    assert profiles[crm_id(1)].attributes == {"loyalty_tier": "platinum"}  # the later row wins
    assert profiles[crm_id(2)].attributes == {}
    assert (sftp_root / "inbox" / "archive" / "profiles_full.csv.gz").exists()


def test_a_wrong_mapping_setting_fails_the_run(app: Flask, peer: SftpPeer, sftp_root: Path) -> None:
    run = run_profiles(app, settings={"sftp_profile_mapping": {"ID": "externalId"}})
    assert run.status == "failed"
    assert (run.error or "").startswith(
        "PUSHGATE_SFTP_PROFILE_MAPPING: column 'ID' maps to 'externalId', which is neither"
    )


def test_subscriptions_are_linked_by_email_when_that_is_the_reconciliation_field(
    app: Flask, peer: SftpPeer, sftp_root: Path
) -> None:
    ids = make_app(app)
    ann, someone = fcm_token("ann's phone"), fcm_token("someone's phone")
    _register(app, ids["id"], ann, "ann.lee@example.com")
    _register(app, ids["id"], someone, "sam.owens@example.com")
    put(sftp_root, "profiles.csv", "external_id,email\nCRM-000001,ann.lee@example.com\n")
    run = run_profiles(app, settings={"reconciliation_field": "email"})
    assert run.summary["details"][0]["details"]["linked"] == 1
    with runtime_of(app).sessions() as session:
        linked = {
            token: profile_id
            for token, profile_id in session.execute(select(Subscription.token, Subscription.profile_id))
        }
    assert linked == {ann: _profiles(app)[crm_id(1)].id, someone: None}


def test_large_files_stream_in_regions_and_a_failed_read_leaves_the_session_usable(
    app: Flask, peer: SftpPeer, sftp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sftp_source, "READ_AHEAD", 64 * 1024)
    rows = 3000
    text = "external_id,first_name,note\n" + "".join(f"{crm_id(i)},Name {i},{'x' * 60}\n" for i in range(rows))
    put(sftp_root, "profiles_1_big.csv", text)
    # A file that breaks down near its start, with most of it still in flight, comes second...
    bad = "external_id,first_name\n" + "CRM-900001,\xff\n" + "CRM-900002,ok\n" * 20000
    (sftp_root / "inbox" / "profiles_2_bad.csv").write_bytes(bad.encode("latin-1"))
    os.utime(sftp_root / "inbox" / "profiles_2_bad.csv", (MTIME + 1, MTIME + 1))
    # ... and a good file after it must still be read correctly on the same session.
    put(sftp_root, "profiles_3_after.csv", "external_id\nCRM-900003\n", mtime=MTIME + 2)
    progress: list[int] = []
    rt = runtime_of(app)
    from sync import service

    settings = rt.settings.model_copy(update={"sync_max_unreadable_fraction": 0.0})
    run = service.run_now("profiles", settings=settings, sessions=rt.sessions, trigger="cli", progress=progress.append)
    outcomes = [(d["name"], d["status"]) for d in run.summary["details"]]
    assert outcomes == [
        ("profiles_1_big.csv", "applied"),
        ("profiles_2_bad.csv", "failed"),
        ("profiles_3_after.csv", "applied"),
    ]
    assert run.summary["details"][0]["applied"] == rows
    assert sum(progress) >= rows + 1
    profiles = _profiles(app)
    assert len(profiles) == rows + 1 and profiles["CRM-002999"].attributes == {"note": "x" * 60}


def test_a_data_file_becomes_a_table_and_replaces_it_whole(app: Flask, peer: SftpPeer, sftp_root: Path) -> None:
    put(sftp_root, "data_offers.csv", "code,title,discount\nK1,Winter coat,30%\nK2,Boots,\n,orphan,1\n")
    run = run_profiles(app, settings={"sync_max_unreadable_fraction": 0.5})
    assert run.status == "succeeded", run.error
    detail = run.summary["details"][0]
    assert (detail["status"], detail["applied"], detail["rejected"]) == ("applied", 2, 1)
    assert detail["details"]["table"] == "offers"
    with runtime_of(app).sessions() as session:
        table = session.scalars(select(LookupTable)).one()
        assert (table.name, table.key_column, table.columns) == ("offers", "code", ["title", "discount"])
        rows = {r.key: r.fields for r in session.scalars(select(LookupRow))}
    assert rows == {"K1": {"title": "Winter coat", "discount": "30%"}, "K2": {"title": "Boots"}}
    assert _read_csv(sftp_root / "inbox" / "rejects" / "data_offers.rejects.csv") == [
        ["line", "code", "title", "discount", "reason"],
        ["4", "", "orphan", "1", "no key (code is empty)"],
    ]
    put(sftp_root, "data_offers.csv.gz", "code,title\nK3,Gloves\nK3,Scarf\n", mtime=MTIME + 60)
    assert run_profiles(app).status == "succeeded"
    with runtime_of(app).sessions() as session:
        rows = {r.key: r.fields for r in session.scalars(select(LookupRow))}
        assert session.scalars(select(LookupTable.columns)).one() == ["title"]
    assert rows == {"K3": {"title": "Scarf"}}  # the whole table replaced; the later row wins


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("data_bad-name.csv", "k,v\n1,2\n", "table name 'bad-name' (from the file name) must be"),
        ("data_t.csv", ",v\n1,2\n", "no key column"),
        ("data_t.csv", "k,_secret\n1,2\n", "column '_secret': templates cannot read names starting with _"),
    ],
)
def test_data_files_that_cannot_be_a_table_fail(
    app: Flask, peer: SftpPeer, sftp_root: Path, name: str, text: str, reason: str
) -> None:
    put(sftp_root, name, text)
    run = run_profiles(app)
    assert run.status == "failed" and reason in (run.error or "")
    with runtime_of(app).sessions() as session:
        assert session.scalars(select(LookupTable)).all() == []


def test_profile_files_are_taken_before_data_files_and_other_names_are_left_alone(
    app: Flask, peer: SftpPeer, sftp_root: Path
) -> None:
    put(sftp_root, "data_a.csv", "k,v\n1,x\n", mtime=MTIME - 100)
    put(sftp_root, "profiles_b.csv", "external_id\nCRM-000001\n")
    put(sftp_root, "profiles_c.csv.part", "external_id\nCRM-000002\n")
    put(sftp_root, "notes.txt", "hello")
    run = run_profiles(app)
    assert [d["name"] for d in run.summary["details"]] == ["profiles_b.csv", "data_a.csv"]
    assert sorted(p.name for p in (sftp_root / "inbox").iterdir() if p.is_file()) == [
        "notes.txt",
        "profiles_c.csv.part",
    ]


def test_the_rejects_folder_must_not_be_the_inbox(app: Flask, peer: SftpPeer) -> None:
    run = run_profiles(app, settings={"sftp_rejects": "inbox/"})
    assert run.status == "failed" and "must be other folders than PUSHGATE_SFTP_INBOX" in (run.error or "")


def test_custom_archive_and_rejects_folders_are_created(app: Flask, peer: SftpPeer, sftp_root: Path) -> None:
    put(sftp_root, "profiles.csv", "external_id,email\nCRM-000001,bad\nCRM-000002,olivia.king@example.com\n")
    run = run_profiles(app, settings={"sftp_archive": "done/2026", "sftp_rejects": "/returns"})
    assert run.status == "succeeded", run.error
    assert (sftp_root / "done" / "2026" / "profiles.csv").exists()
    assert (sftp_root / "returns" / "profiles.rejects.csv").exists()


def test_attributes_over_the_limit_once_merged_are_rejected(app: Flask, peer: SftpPeer, sftp_root: Path) -> None:
    make_profile(app, "CRM-000001", attributes={"big": "x" * 16_000})
    put(sftp_root, "profiles.csv", f"external_id,more\nCRM-000001,{'y' * 1000}\nCRM-000002,{'y' * 1000}\n")
    run = run_profiles(app)
    assert (run.summary["applied"], run.summary["rejected"]) == (1, 1)
    assert _profiles(app)["CRM-000001"].attributes == {"big": "x" * 16_000}
    rows = _read_csv(sftp_root / "inbox" / "rejects" / "profiles.rejects.csv")
    assert rows[1][0] == "2" and rows[1][-1].startswith("attributes: attributes once merged is")
