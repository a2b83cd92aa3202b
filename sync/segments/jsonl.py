"""Reading one JSON-lines export file (:func:`read_jsonl`), each line one record.

- the identity column is a dotted path (``personalEmail.address``), a key of a flattened record or
  the value at that path in a nested one; an ``identityMap`` entry gives its ``id``;
- the status is ``segmentMembership.status`` or ``segmentMembership.ups.{segmentId}.status``, flat
  or nested; a missing or empty one: not in that segment;
- a line that is not JSON, or not a JSON object, is unreadable; blank lines are skipped.

Rows are numbered by their line in the file. The columns the governance check sees are the paths
the records have. A file with readable records of which none has the identity, or none a status,
raises :class:`~sync.segments.rows.SegmentFileProblem`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from store.queries.audience_staging import ref
from sync.segments.names import ExportFile
from sync.segments.rows import (
    CHUNK,
    PER_SEGMENT,
    SINGLE_STATUS,
    Batches,
    PartStats,
    ReadOptions,
    SegmentFileProblem,
    Segments,
    Stage,
    identity_problem,
    status_code,
    unknown_status,
)

_UPS_PREFIX = "segmentMembership.ups."


def _lookup(record: dict[str, Any], path: str, parts: list[str]) -> Any:
    """``record[path]`` for a flattened record, else the nested value at the dotted path."""
    if path in record:
        return record[path]
    value: Any = record
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _identity(value: Any) -> str:
    """An identity value as text; an ``identityMap`` entry (a list of ``{"id": ...}``) gives its first id."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return _identity(value.get("id"))
    if isinstance(value, list):
        for item in value:
            found = _identity(item)
            if found:
                return found
    return ""


def _statuses(record: dict[str, Any], file_segment: str) -> Iterator[tuple[str, Any, bool]]:
    """``(segment id, status value, from the single status field)`` for each status in a record."""
    membership = record.get("segmentMembership")
    if isinstance(membership, dict):
        ups = membership.get("ups")
        if isinstance(ups, dict):
            for segment_id, entry in ups.items():
                yield str(segment_id), entry.get("status") if isinstance(entry, dict) else entry, False
        if "status" in membership:
            yield file_segment, membership["status"], True
    if SINGLE_STATUS in record:
        yield file_segment, record[SINGLE_STATUS], True
    for key, value in record.items():
        if key.startswith(_UPS_PREFIX):
            match = PER_SEGMENT.fullmatch(key)
            if match is not None:
                yield match["segment"], value, False


def _collect_paths(record: dict[str, Any], prefix: str, into: set[str]) -> None:
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _collect_paths(value, f"{path}.", into)
        else:
            into.add(path)


@dataclass
class _JsonSeen:
    """What the records of a JSON file had, for the checks made once the file is read."""

    columns: set[str] = field(default_factory=set)
    identity: bool = False
    status: bool = False
    single: bool = False


def _json_record(
    raw: str,
    line: int,
    file: ExportFile,
    segments: Segments,
    batches: Batches,
    path: tuple[str, list[str]],
    seen: _JsonSeen,
) -> None:
    """Stage or reject one JSON line."""
    try:
        record = json.loads(raw)
    except ValueError as exc:
        batches.reject(line, None, f"unreadable row: not JSON ({getattr(exc, 'msg', exc)})", unreadable=True)
        return
    if not isinstance(record, dict):
        batches.reject(line, None, "unreadable row: not a JSON object", unreadable=True)
        return
    _collect_paths(record, "", seen.columns)
    raw_identity = _lookup(record, *path)
    seen.identity = seen.identity or raw_identity is not None
    identity = _identity(raw_identity)
    found: list[tuple[int, int]] = []
    for segment_id, value, single in _statuses(record, file.segment_id):
        if value is None or value == "":
            continue
        seen.status = True
        seen.single = seen.single or single
        code = status_code(value) if isinstance(value, str) else None
        if code is None:
            batches.reject(line, identity, unknown_status(str(value)))
            return
        found.append((segments.number(segment_id), code))
    problem = identity_problem(identity) if found else None
    if problem is not None:
        batches.reject(line, identity, problem)
        return
    for segment, code in found:
        batches.rows.append((identity, ref(batches.part, line, segment, code)))
        batches.stats.tally(segment)[code] += 1


def read_jsonl(
    text: io.TextIOWrapper, file: ExportFile, part: int, segments: Segments, stage: Stage, options: ReadOptions
) -> PartStats:
    """Parse the decoded lines of one JSON-lines file into ``stage``; returns its counts."""
    stats = PartStats()
    batches = Batches(part, stage, stats, options.progress)
    path = (options.identity_column, options.identity_column.split("."))
    seen = _JsonSeen()
    for line, raw in enumerate(text, start=1):
        if not raw.strip():
            continue
        stats.rows += 1
        _json_record(raw, line, file, segments, batches, path, seen)
        if len(batches.rows) >= CHUNK:
            batches.flush()
    readable = stats.rows - stats.unreadable
    if readable and not seen.identity:
        raise SegmentFileProblem(f"missing identity column {path[0]!r}: no record has it")
    if readable and not seen.status:
        raise SegmentFileProblem(
            f"no segment status in any record ({SINGLE_STATUS} or segmentMembership.ups.<id>.status)"
        )
    if seen.single or not readable:
        stats.tally(segments.number(file.segment_id))
    stats.columns = sorted(seen.columns)
    options.check_columns(stats.columns)
    batches.flush()
    return stats
