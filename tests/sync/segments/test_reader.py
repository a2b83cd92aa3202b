"""Reading export files (no storage involved): CSV with any delimiter, gzip, JSON lines, single and
per-segment status columns, and what counts as a rejected or an unreadable row."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Sequence
from typing import Any

import pytest

from store.queries.audience_staging import StagedReject, StagedRow, unref
from sync.segments.names import parse_name
from sync.segments.reader import read_part
from sync.segments.rows import Blocked, PartStats, ReadOptions, SegmentFileProblem, Segments

SEG = "seg-a"


class ListStage:
    """Collects what the reader stages, decoded."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, int, str, int]] = []  # identity, part, line, segment id, status
        self.rejects: list[tuple[int, str | None, str]] = []  # line, identity, reason
        self.segments: Segments | None = None

    def add_rows(self, rows: list[StagedRow]) -> None:
        for identity, ref in rows:
            part, line, segment, status = unref(ref)
            assert self.segments is not None
            self.rows.append((identity, part, line, self.segments.ids[segment], status))

    def add_rejects(self, rejects: list[StagedReject]) -> None:
        self.rejects.extend((line, identity, reason) for _, line, identity, reason, _ in rejects)


def read(
    data: bytes,
    name: str = f"Dest_{SEG}_20261201_060000.csv",
    identity: str = "crmId",
    delimiter: str = ",",
    part: int = 0,
    check: Any = None,
) -> tuple[PartStats, ListStage]:
    file = parse_name(name)
    assert file is not None
    stage = ListStage()
    stage.segments = Segments()
    progress: list[int] = []
    options = ReadOptions(identity, delimiter, check or (lambda columns: None), progress.append)
    stats = read_part(io.BufferedReader(io.BytesIO(data)), file, part, stage.segments, stage, options)
    assert sum(progress) == stats.rows
    return stats, stage


def test_single_segment_csv() -> None:
    data = (
        b"crmId,person.name.firstName,segmentMembership.status\n"
        b"CRM-000001,Ann,realized\n"
        b"CRM-000002,Bob,existing\n"
        b"CRM-000003,Cy,exited\n"
    )
    stats, stage = read(data)
    assert stage.rows == [("CRM-000001", 0, 2, SEG, 1), ("CRM-000002", 0, 3, SEG, 2), ("CRM-000003", 0, 4, SEG, 3)]
    assert (stats.rows, stats.unreadable, stats.rejected) == (3, 0, 0)
    assert stats.counts == {0: [0, 1, 1, 1]}
    assert stats.columns == ["crmId", "person.name.firstName", "segmentMembership.status"]


def test_delimiter_bom_crlf_quotes_and_spaces() -> None:
    data = (
        "\ufeffcrmId;name;segmentMembership.status\r\n"
        '" CRM-000001 ";"Ann; ""A""";REALIZED\r\n'
        'CRM-000002;"multi\nline";existing\r\n'
    )
    stats, stage = read(data.encode(), delimiter=";")
    assert [(r[0], r[4]) for r in stage.rows] == [("CRM-000001", 1), ("CRM-000002", 2)]
    assert stats.rows == 2


def test_gzip_by_extension_and_by_content() -> None:
    data = gzip.compress(b"crmId,segmentMembership.status\nCRM-000001,realized\n")
    for name in (f"Dest_{SEG}_20261201_060000.csv.gz", f"Dest_{SEG}_20261201_060000.csv"):
        _, stage = read(data, name=name)
        assert [r[0] for r in stage.rows] == ["CRM-000001"]


def test_a_truncated_gzip_file_is_a_file_problem() -> None:
    data = gzip.compress(b"crmId,segmentMembership.status\n" + b"CRM-000001,realized\n" * 1000)[:-20]
    with pytest.raises(SegmentFileProblem, match="not a readable gzip file"):
        read(data, name=f"Dest_{SEG}_20261201_060000.csv.gz")


def test_per_segment_status_columns() -> None:
    data = (
        b"crmId,segmentMembership.ups.seg-a.status,segmentMembership.ups.seg-b.status\n"
        b"CRM-000001,realized,\n"
        b"CRM-000002,existing,exited\n"
        b"CRM-000003,,\n"
    )
    stats, stage = read(data)
    assert stage.rows == [
        ("CRM-000001", 0, 2, "seg-a", 1),
        ("CRM-000002", 0, 3, "seg-a", 2),
        ("CRM-000002", 0, 3, "seg-b", 3),
    ]
    assert stats.rows == 3 and not stage.rejects  # CRM-000003 is in neither segment: nothing to do
    assert stats.counts == {0: [0, 1, 1, 0], 1: [0, 0, 0, 1]}


def test_rejected_and_unreadable_rows() -> None:
    data = (
        b"crmId,name,segmentMembership.status\n"
        b",Ann,realized\n"  # empty identity
        b"CRM-000002,Bob,maybe\n"  # unknown status
        b"CRM-000003,Cy\n"  # too few fields
        b"\n"  # blank line: skipped
        b"CRM-000004,Di,realized,extra\n"  # too many fields
        b"CRM-000005,Ed,existing\n"
    )
    stats, stage = read(data, part=2)
    assert stage.rows == [("CRM-000005", 2, 6, SEG, 2)]
    assert stage.rejects == [
        (2, None, "empty identity"),
        (3, "CRM-000002", "unknown status 'maybe' (expected realized, existing or exited)"),
        (4, None, "unreadable row: 2 fields, expected 3"),
        (5, None, "unreadable row: 4 fields, expected 3"),
    ]
    assert (stats.rows, stats.unreadable, stats.rejected) == (5, 2, 4)
    assert stats.first_unreadable == (4, "unreadable row: 2 fields, expected 3")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file: no header row"),
        (
            b"email,segmentMembership.status\nalice.martin@example.com,realized\n",
            "missing identity column 'crmId' (columns: email, segm",
        ),
        (b"crmId,name\nCRM-000001,Ann\n", "no segment status column"),
    ],
)
def test_files_that_cannot_be_applied(data: bytes, message: str) -> None:
    with pytest.raises(SegmentFileProblem, match=message.replace("(", r"\(")):
        read(data)


def test_columns_are_checked_before_any_row_is_staged() -> None:
    seen: list[Sequence[str]] = []

    def check(columns: Sequence[str]) -> None:
        seen.append(list(columns))
        raise Blocked("blocked by policy")

    with pytest.raises(Blocked):
        read(b"crmId,segmentMembership.status\nCRM-000001,realized\n", check=check)
    assert seen == [["crmId", "segmentMembership.status"]]


def jsonl(*records: Any) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def test_json_lines_nested_flat_and_identity_map() -> None:
    data = jsonl(
        {"personalEmail": {"address": "ann.lee@example.com"}, "segmentMembership": {"status": "realized"}},
        {"personalEmail.address": "bob.dupont@example.com", "segmentMembership.status": "existing"},
        {
            "identityMap": {"email": [{"id": "carla.diaz@example.com", "primary": True}]},
            "segmentMembership": {
                "ups": {"seg-b": {"status": "exited", "lastQualificationTime": "2026-12-01T06:00:00Z"}}
            },
        },
    )
    stats, stage = read(data, name=f"Dest_{SEG}_20261201_060000.json", identity="personalEmail.address")
    assert [(r[0], r[2], r[3], r[4]) for r in stage.rows] == [
        ("ann.lee@example.com", 1, SEG, 1),
        ("bob.dupont@example.com", 2, SEG, 2),
    ]
    assert stage.rejects == [(3, None, "empty identity")]
    stats, stage = read(data, name=f"Dest_{SEG}_20261201_060000.json", identity="identityMap.email")
    assert [(r[0], r[3], r[4]) for r in stage.rows] == [("carla.diaz@example.com", "seg-b", 3)]
    assert "segmentMembership.ups.seg-b.lastQualificationTime" in stats.columns
    assert "identityMap.email" in stats.columns


def test_json_unreadable_lines_and_missing_identity() -> None:
    data = jsonl({"crmId": "CRM-000001", "segmentMembership": {"status": "realized"}}, "{not json", "[1, 2]")
    stats, stage = read(data, name=f"Dest_{SEG}_20261201_060000.jsonl")
    assert stats.unreadable == 2 and [r[0] for r in stage.rows] == ["CRM-000001"]
    assert stage.rejects[1] == (3, None, "unreadable row: not a JSON object")
    with pytest.raises(SegmentFileProblem, match="missing identity column 'crmId': no record has it"):
        read(
            jsonl({"email": "alice.martin@example.com", "segmentMembership": {"status": "realized"}}),
            name=f"D_{SEG}_20261201_060000.json",
        )


def test_streaming_stages_in_chunks() -> None:
    rows = b"".join(b"CRM-%06d,realized\n" % i for i in range(12_345))
    stats, stage = read(b"crmId,segmentMembership.status\n" + rows)
    assert stats.rows == len(stage.rows) == 12_345
    assert stage.rows[-1] == ("CRM-012344", 0, 12_346, SEG, 1)
