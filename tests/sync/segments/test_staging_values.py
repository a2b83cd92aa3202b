"""Identities that a staging format could garble: PostgreSQL stages them with ``COPY`` (text format,
where tab, newline, backslash and ``\\N`` mean something), SQLite with ``executemany``. Each must
come out exactly as it went in, and an import of them must end the same on both databases; the
values no database can hold (NUL, a lone surrogate) are refused with a reason before staging."""

from __future__ import annotations

import json

import psycopg
import pytest
from azure.storage.blob import ContainerClient
from flask import Flask

from store.queries.audience_staging import MAX_PARTS, MAX_SEGMENTS, Staging, kind, ref
from sync.segments.rows import unknown_status
from tests.conftest import runtime_of
from tests.sync.segments.exports import (
    SEG_VIP,
    export_name,
    gz,
    make_profiles,
    members,
    rejects,
    run_import,
    single,
    upload,
)

#: Identities a profile can have (at most 255 characters), each a trap for one format or another.
TRICKY = (
    "crm\t000001",  # COPY's column separator
    "crm\n000002",  # COPY's row separator (and a CSV value spanning two lines)
    "crm\r\n000003",
    "crm\\000004",  # COPY's escape character
    "crm\\t000005",  # a backslash and a t, not a tab
    "\\N",  # COPY's NULL, as text
    "\\.",  # the end-of-data line of the old COPY protocol
    "ends with a backslash\\",
    'say "cheese"',  # CSV's quote
    "o'brien; DROP TABLE profile",
    "a,b|c;d",
    "Zoë Ærøskøbing 東京 🚀",  # two-, three- and four-byte UTF-8
    "x" * 255,  # as long as profile.external_id holds
)
#: Identities no profile has: rejected, and kept (up to 255 characters) in the run's rejects.
UNKNOWN = ("nobody\t\\N\nhere", "long-" + "y" * 99_995)  # the second: far longer than any index entry


def test_tricky_identities_are_matched_and_rejected_verbatim(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *TRICKY)
    rows = [(identity, "realized") for identity in TRICKY]
    rows += [(identity, "realized") for identity in UNKNOWN]
    rows += [("crm\\000004", "réalisé\t\\N"), ("nul\x00crm", "realized"), ("", "existing")]
    name = export_name(SEG_VIP, ext=".csv.gz")
    upload(container, name, gz(single(rows)))

    run = run_import(app)

    assert run.status == "succeeded", run.error
    assert members(app, SEG_VIP) == dict.fromkeys(TRICKY, "realized")
    first = len(TRICKY) + 2  # line of the first row after TRICKY's (the header is line 1)
    assert rejects(app, run.id) == [
        (name, first, UNKNOWN[0], f"no profile with external_id {UNKNOWN[0]}"),
        (name, first + 1, UNKNOWN[1][:255], f"no profile with external_id {UNKNOWN[1]}"[:255]),
        (name, first + 2, "crm\\000004", unknown_status("réalisé\t\\N")),
        (name, first + 3, "nul\ufffdcrm", "identity contains a NUL character"),
        (name, first + 4, None, "empty identity"),
    ]
    assert (run.summary["rows"], run.summary["applied"], run.summary["rejected"]) == (len(rows), len(TRICKY), 5)


def test_json_identities_no_database_can_hold_are_refused(app: Flask, container: ContainerClient) -> None:
    make_profiles(app, *TRICKY[:3])
    records = [{"crmId": identity, "segmentMembership": {"status": "realized"}} for identity in TRICKY[:3]]
    # json.dumps writes both as escapes; json.loads gives them back as a NUL and a lone surrogate
    records += [
        {"crmId": "nul\x00crm", "segmentMembership": {"status": "realized"}},
        {"crmId": "half \ud83d emoji", "segmentMembership": {"status": "existing"}},
    ]
    name = export_name(SEG_VIP, ext=".json")
    upload(container, name, "".join(json.dumps(record) + "\n" for record in records).encode())

    run = run_import(app, segments_identity_column="crmId")

    assert run.status == "succeeded", run.error
    assert members(app, SEG_VIP) == dict.fromkeys(TRICKY[:3], "realized")
    assert rejects(app, run.id) == [
        (name, 4, "nul\ufffdcrm", "identity contains a NUL character"),
        (name, 5, "half \ufffd emoji", "identity is not valid Unicode (a lone surrogate)"),
    ]


def test_copy_stages_every_value_verbatim_on_postgresql(app: Flask) -> None:
    engine = runtime_of(app).engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stages with executemany, which binds each value; COPY is PostgreSQL's path")
    last = ref(MAX_PARTS - 1, (1 << 32) - 1, MAX_SEGMENTS - 1, 3)  # every bit of the 63 in use
    staged = [(identity, ref(0, line, 1, 1)) for line, identity in enumerate(TRICKY + UNKNOWN, start=2)]
    staged.append(("\u2028\u0085\x1b\x7f\x01", last))  # separators and controls other than NUL
    refused = [
        (0, 2, None, "unreadable row: 2 fields, expected 3", None),  # NULLs
        (1, 3, "\\N", "tab\there, newline\nthere, backslash\\there", kind(2, 3)),
        (MAX_PARTS - 1, (1 << 32) - 1, UNKNOWN[1], "é" * 10_000, kind(MAX_SEGMENTS - 1, 3)),
        (2, 4, "", "", 0),  # empty strings stay empty, not NULL
    ]
    with engine.connect() as conn:
        staging = Staging(conn, "external_id")
        with conn.begin():
            staging.create()
            staging.add_rows([])  # an empty chunk sends nothing
            staging.add_rows(staged)
            staging.add_rejects(refused)
            got_rows = conn.exec_driver_sql("SELECT identity, ref FROM segment_stage").all()
            got_rejects = conn.exec_driver_sql("SELECT part, line, identity, reason, kind FROM segment_reject").all()
            staging.drop()
        assert sorted(map(tuple, got_rows)) == sorted(staged)
        assert sorted(map(tuple, got_rejects), key=repr) == sorted(refused, key=repr)
        # why the reader refuses NUL before staging: COPY would fail the whole export
        with pytest.raises(psycopg.DataError), conn.begin():
            staging.create()
            staging.add_rows([("nul\x00crm", ref(0, 2, 0, 1))])
