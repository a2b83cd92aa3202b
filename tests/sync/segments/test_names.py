"""File names of Platform's Azure Blob destination: parsing, export keys, grouping of split parts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync.segments.names import KEY_MAX, group_exports, parse_name

SEGMENT = "7c1e4b2a-1111-4a6e-9d0b-3f5e8a9c0d1e"


def test_default_name() -> None:
    file = parse_name(f"Azure_Blob_Storage_{SEGMENT}_20261201_060510.csv")
    assert file is not None
    assert file.destination == "Azure_Blob_Storage"  # underscores in the destination name are kept
    assert file.segment_id == SEGMENT
    assert file.exported_at == datetime(2026, 12, 1, 6, 5, 10, tzinfo=UTC)
    assert (file.part, file.format, file.compressed) == (1, "csv", False)
    assert file.key == file.name


@pytest.mark.parametrize(
    ("name", "part", "fmt", "compressed"),
    [
        (f"Dest_{SEGMENT}_20261201_060510_2.csv", 2, "csv", False),
        (f"Dest_{SEGMENT}_20261201_060510_13.csv.gz", 13, "csv", True),
        (f"Dest_{SEGMENT}_20261201_060510.gz", 1, "csv", True),
        (f"Dest_{SEGMENT}_20261201_060510.json", 1, "json", False),
        (f"Dest_{SEGMENT}_20261201_060510_3.jsonl", 3, "json", False),
        (f"Dest_{SEGMENT}_20261201_060510.json.gz", 1, "json", True),
        (f"Dest_{SEGMENT}_20261201_060510.CSV", 1, "csv", False),
    ],
)
def test_parts_formats_and_compression(name: str, part: int, fmt: str, compressed: bool) -> None:
    file = parse_name(name)
    assert file is not None
    assert (file.part, file.format, file.compressed) == (part, fmt, compressed)


def test_a_part_shares_the_key_of_its_export_and_names_its_siblings() -> None:
    first = parse_name(f"exports/daily/Dest_{SEGMENT}_20261201_060510.csv.gz")
    third = parse_name(f"exports/daily/Dest_{SEGMENT}_20261201_060510_3.csv.gz")
    assert first is not None and third is not None
    assert first.folder == "exports/daily/"
    assert third.key == first.key == first.name
    assert first.part_name(2) == f"exports/daily/Dest_{SEGMENT}_20261201_060510_2.csv.gz"
    assert third.part_name(1) == first.name


@pytest.mark.parametrize(
    "name",
    [
        "manifest-0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6-12345.json",
        f"Dest_{SEGMENT}_20261201.csv",
        f"Dest_{SEGMENT}_20261301_060510.csv",  # month 13
        f"Dest_{SEGMENT}_20261201_060510.parquet",
        f"{SEGMENT}_20261201_060510.csv",  # no destination
        "exports/",
    ],
)
def test_other_names_are_not_exports(name: str) -> None:
    assert parse_name(name) is None


def test_a_long_key_is_shortened_with_a_hash() -> None:
    long_folder = "x" * 300 + "/"
    file = parse_name(f"{long_folder}Dest_{SEGMENT}_20261201_060510.csv")
    other = parse_name(f"{long_folder.replace('x', 'y')}Dest_{SEGMENT}_20261201_060510.csv")
    assert file is not None and other is not None
    assert len(file.key) == KEY_MAX
    assert file.key != other.key


def test_exports_group_their_parts_oldest_first() -> None:
    names = [
        f"D_{SEGMENT}_20261202_060000.csv",
        f"D_{SEGMENT}_20261201_060000_2.csv",
        "D_b_20261201_060000.csv",
        f"D_{SEGMENT}_20261201_060000.csv",
    ]
    files = [parse_name(name) for name in names]
    exports = group_exports(file for file in files if file is not None)
    assert [[f.name for f in e.files] for e in exports] == [
        [f"D_{SEGMENT}_20261201_060000.csv", f"D_{SEGMENT}_20261201_060000_2.csv"],
        ["D_b_20261201_060000.csv"],
        [f"D_{SEGMENT}_20261202_060000.csv"],
    ]
