"""Reading one export file (:func:`read_part`): CSV (any one-character delimiter), gzip-compressed
CSV, JSON lines (:mod:`sync.segments.jsonl`). What becomes of the rows: :mod:`sync.segments.rows`.

A file is read as gzip when its name says so or its first two bytes do. A CSV file's header row
names its columns: the identity column, and ``segmentMembership.status`` or one
``segmentMembership.ups.{segmentId}.status`` per segment (an empty value in a per-segment column:
not in that segment). A row with the wrong number of fields or broken quoting is unreadable.

Rows are numbered as a spreadsheet shows them: the header is line 1, the first row line 2 (a
quoted value spanning several lines stays one row; blank lines are skipped).

A file that cannot be applied at all raises :class:`~sync.segments.rows.SegmentFileProblem`: more
parts than can be staged, not gzip, and in CSV no header, no identity column, no status column.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from typing import IO, Any

from store.queries.audience_staging import MAX_PARTS, StagedRow, ref
from sync.segments.jsonl import read_jsonl
from sync.segments.names import ExportFile
from sync.segments.rows import (
    CHUNK,
    PER_SEGMENT,
    SINGLE_STATUS,
    STATUS_CODES,
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
            return read_jsonl(text, file, part, segments, stage, options)
        return _read_csv(text, file, part, segments, stage, options)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise SegmentFileProblem(f"not a readable gzip file ({exc})") from None


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
            match = PER_SEGMENT.fullmatch(name)
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
    batches = Batches(part, stage, stats, options.progress)
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
    reader: Any, width: int, identity_at: int, status_columns: list[tuple[int, int]], batches: Batches
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
            code = get(value) or status_code(value)
            if code is None or not identity or "\x00" in identity:  # no lone surrogate: decoded with "replace"
                batches.reject(count + 1, identity, identity_problem(identity) or unknown_status(value))
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
    reader: Any, width: int, identity_at: int, status_columns: list[tuple[int, int]], batches: Batches
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
            code = codes.get(value) or status_code(value)
            if code is None:
                problem = unknown_status(value)
                break
            found.append(((identity, ref(part, line, segment, code)), code, tally))
        if found:
            problem = identity_problem(identity) or problem
        if problem is not None:
            batches.reject(line, identity, problem)
            continue
        for staged, code, tally in found:
            batches.rows.append(staged)
            tally[code] += 1
        if len(batches.rows) >= CHUNK:
            batches.flush()
