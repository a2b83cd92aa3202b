"""Reading one export file: CSV (any one-character delimiter), gzip-compressed CSV, JSON lines.

A file is streamed: rows go to the staging area in chunks of :data:`CHUNK` as they are parsed, so
memory does not grow with the file. Each row becomes one staged ``(identity, ref)`` pair per segment
it has a status for (``ref`` packs the part, the line, the segment and the status: see :func:`ref`),
or one reject:

- the identity is the configured column (``PUSHGATE_SEGMENTS_IDENTITY_COLUMN``); in JSON a dotted
  path (``personalEmail.address``), flat or nested, and an ``identityMap`` entry gives its ``id``;
- the status is ``segmentMembership.status`` (the file's own segment, from its name) or
  ``segmentMembership.ups.{segmentId}.status`` (one column per segment), valued ``realized``,
  ``existing`` or ``exited`` (an empty value in a per-segment column: not in that segment);
- an unreadable row (wrong number of fields, broken quoting, not a JSON object) is rejected and
  counted: the importer fails a file whose unreadable rows exceed the configured fraction.

Rows are numbered as a spreadsheet shows them: the header is line 1, the first row line 2 (a
quoted value spanning several lines stays one row; blank lines are skipped). In JSON lines, the
line number.

A file that cannot be applied at all raises :class:`SegmentFileProblem` (its message is the ledger's
reason): no header, no identity column, no status column, not gzip, and, through the
``check_columns`` callback, a governance block (:class:`Blocked`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from store.queries.audience_staging import MAX_PARTS, MAX_SEGMENTS, StagedReject, StagedRow, ref
from sync.segments.names import ExportFile

#: Rows staged per round trip.
CHUNK = 5000

#: Status names of the exports and the numbers they are staged as.
STATUS_CODES = {"realized": 1, "existing": 2, "exited": 3}
STATUS_NAMES = ("", "realized", "existing", "exited")
SINGLE_STATUS = "segmentMembership.status"
_PER_SEGMENT = re.compile(r"segmentMembership\.ups\.(?P<segment>[^.]+)\.status")
_UPS_PREFIX = "segmentMembership.ups."


class SegmentFileProblem(Exception):
    """The file cannot be applied; the message (one line) is the reason recorded in the ledger."""

    status = "failed"


class Blocked(SegmentFileProblem):
    """A governance policy forbids using the file."""

    status = "blocked"


class Stage(Protocol):
    """Where parsed rows go (see :mod:`store.queries.audience_staging`)."""

    def add_rows(self, rows: list[StagedRow]) -> None: ...

    def add_rejects(self, rejects: list[StagedReject]) -> None: ...


class Segments:
    """The segment ids of one export, numbered in order of appearance (the staged numbers)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._numbers: dict[str, int] = {}

    def number(self, segment_id: str) -> int:
        found = self._numbers.get(segment_id)
        if found is None:
            if len(self.ids) >= MAX_SEGMENTS:
                raise SegmentFileProblem(f"more than {MAX_SEGMENTS} segments in one export")
            found = self._numbers[segment_id] = len(self.ids)
            self.ids.append(segment_id)
        return found


@dataclass
class PartStats:
    """What reading one file found."""

    rows: int = 0
    unreadable: int = 0
    rejected: int = 0  # rows rejected while reading (unreadable ones included)
    first_unreadable: tuple[int, str] | None = None  # (line, reason)
    columns: list[str] = field(default_factory=list)
    # segment number -> rows per status code (index 1 realized, 2 existing, 3 exited)
    counts: dict[int, list[int]] = field(default_factory=dict)

    def tally(self, segment: int) -> list[int]:
        found = self.counts.get(segment)
        if found is None:
            found = self.counts[segment] = [0, 0, 0, 0]
        return found


@dataclass
class ReadOptions:
    identity_column: str
    delimiter: str
    check_columns: Callable[[Sequence[str]], None]
    progress: Callable[[int], None]


def _status_code(value: str) -> int | None:
    return STATUS_CODES.get(value.strip().lower())


def _unknown_status(value: str) -> str:
    if not value.strip():
        return "empty status"
    return f"unknown status {value[:60]!r} (expected realized, existing or exited)"


def read_part(
    stream: IO[bytes], file: ExportFile, part: int, segments: Segments, stage: Stage, options: ReadOptions
) -> PartStats:
    """Parse one export file into ``stage``; returns its counts. Raises :class:`SegmentFileProblem`."""
    if part >= MAX_PARTS:
        raise SegmentFileProblem(f"more than {MAX_PARTS} parts in one export")
    peek = getattr(stream, "peek", None)
    gzipped = file.compressed or (peek is not None and peek(2)[:2] == b"\x1f\x8b")
    binary: Any = gzip.GzipFile(fileobj=stream, mode="rb") if gzipped else stream
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
    try:
        if file.format == "json":
            return _read_jsonl(text, file, part, segments, stage, options)
        return _read_csv(text, file, part, segments, stage, options)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise SegmentFileProblem(f"not a readable gzip file ({exc})") from None


class _Batches:
    """Staged rows and rejects of one file, sent to the stage a chunk at a time."""

    def __init__(self, part: int, stage: Stage, stats: PartStats, progress: Callable[[int], None]) -> None:
        self.part = part
        self.stage = stage
        self.stats = stats
        self.progress = progress
        self.rows: list[StagedRow] = []
        self.rejects: list[StagedReject] = []
        self.reported = 0

    def reject(self, line: int, identity: str | None, reason: str, *, unreadable: bool = False) -> None:
        self.rejects.append((self.part, line, identity or None, reason, None))
        self.stats.rejected += 1
        if unreadable:
            self.stats.unreadable += 1
            if self.stats.first_unreadable is None:
                self.stats.first_unreadable = (line, reason)
        if len(self.rejects) >= CHUNK:
            self.stage.add_rejects(self.rejects)
            self.rejects = []

    def flush(self) -> None:
        if self.rows:
            self.stage.add_rows(self.rows)
            self.rows = []
        if self.rejects:
            self.stage.add_rejects(self.rejects)
            self.rejects = []
        self.advance()

    def advance(self) -> None:
        self.progress(self.stats.rows - self.reported)
        self.reported = self.stats.rows


# -- CSV ------------------------------------------------------------------------------------------


def _read_csv(
    text: io.TextIOWrapper, file: ExportFile, part: int, segments: Segments, stage: Stage, options: ReadOptions
) -> PartStats:
    reader = csv.reader(text, delimiter=options.delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise SegmentFileProblem("empty file: no header row") from None
    except csv.Error as exc:
        raise SegmentFileProblem(f"unreadable header row ({exc})") from None
    if options.identity_column not in header:
        shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
        raise SegmentFileProblem(f"missing identity column {options.identity_column!r} (columns: {shown})")
    identity_at = header.index(options.identity_column)
    status_columns: list[tuple[int, int]] = []
    for index, name in enumerate(header):
        if name == SINGLE_STATUS:
            status_columns.append((index, segments.number(file.segment_id)))
        else:
            match = _PER_SEGMENT.fullmatch(name)
            if match is not None:
                status_columns.append((index, segments.number(match["segment"])))
    if not status_columns:
        raise SegmentFileProblem(
            f"no segment status column ({SINGLE_STATUS} or segmentMembership.ups.<segmentId>.status)"
        )
    options.check_columns(header)
    stats = PartStats(columns=header)
    for _, segment in status_columns:
        stats.tally(segment)
    batches = _Batches(part, stage, stats, options.progress)
    rows = _single_status_rows if len(status_columns) == 1 else _per_segment_rows
    while True:
        try:
            rows(reader, len(header), identity_at, status_columns, batches)
            break
        except csv.Error as exc:  # the reader goes on with the next line
            stats.rows += 1
            batches.reject(stats.rows + 1, None, f"unreadable row: {exc}", unreadable=True)
    batches.flush()
    return stats


def _single_status_rows(
    reader: Any, width: int, identity_at: int, status_columns: list[tuple[int, int]], batches: _Batches
) -> None:
    """The loop for a file with one status column, where the import spends its time: a few
    look-ups per row, the ref kept up to date by one addition."""
    status_at, segment = status_columns[0]
    stats = batches.stats
    tally = stats.tally(segment)
    get = STATUS_CODES.get
    count = stats.rows
    lineref = ref(batches.part, count + 1, segment, 0)  # the previous row's ref, without status
    room = CHUNK - len(batches.rows)
    append = batches.rows.append
    try:
        for row in reader:
            if len(row) != width:
                if not row:
                    continue  # a blank line
                count += 1
                lineref += 65536
                batches.reject(count + 1, None, f"unreadable row: {len(row)} fields, expected {width}", unreadable=True)
                continue
            count += 1
            lineref += 65536
            identity = row[identity_at].strip()
            value = row[status_at]
            code = get(value) or _status_code(value)
            if code is None or not identity:
                batches.reject(count + 1, identity, "empty identity" if not identity else _unknown_status(value))
                continue
            append((identity, lineref | code))
            tally[code] += 1
            room -= 1
            if not room:
                stats.rows = count
                batches.flush()
                append = batches.rows.append
                room = CHUNK
    finally:
        stats.rows = count


def _per_segment_rows(
    reader: Any, width: int, identity_at: int, status_columns: list[tuple[int, int]], batches: _Batches
) -> None:
    """The loop for a file with a status column per segment; an empty status: not in that segment."""
    part = batches.part
    stats = batches.stats
    tallies = [(at, segment, stats.tally(segment)) for at, segment in status_columns]
    codes = STATUS_CODES
    for row in reader:
        if len(row) != width:
            if not row:
                continue
            stats.rows += 1
            batches.reject(
                stats.rows + 1, None, f"unreadable row: {len(row)} fields, expected {width}", unreadable=True
            )
            continue
        stats.rows += 1
        line = stats.rows + 1
        identity = row[identity_at].strip()
        found: list[tuple[StagedRow, int, list[int]]] = []
        problem = None
        for at, segment, tally in tallies:
            value = row[at]
            if not value:
                continue
            code = codes.get(value) or _status_code(value)
            if code is None:
                problem = _unknown_status(value)
                break
            found.append(((identity, ref(part, line, segment, code)), code, tally))
        if found and not identity:
            problem = "empty identity"
        if problem is not None:
            batches.reject(line, identity, problem)
            continue
        for staged, code, tally in found:
            batches.rows.append(staged)
            tally[code] += 1
        if len(batches.rows) >= CHUNK:
            batches.flush()


# -- JSON lines -----------------------------------------------------------------------------------


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
            match = _PER_SEGMENT.fullmatch(key)
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
    batches: _Batches,
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
        code = _status_code(value) if isinstance(value, str) else None
        if code is None:
            batches.reject(line, identity, _unknown_status(str(value)))
            return
        found.append((segments.number(segment_id), code))
    if found and not identity:
        batches.reject(line, identity, "empty identity")
        return
    for segment, code in found:
        batches.rows.append((identity, ref(batches.part, line, segment, code)))
        batches.stats.tally(segment)[code] += 1


def _read_jsonl(
    text: io.TextIOWrapper, file: ExportFile, part: int, segments: Segments, stage: Stage, options: ReadOptions
) -> PartStats:
    stats = PartStats()
    batches = _Batches(part, stage, stats, options.progress)
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
