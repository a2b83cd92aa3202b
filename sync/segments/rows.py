"""What reading an export file makes of its rows, whatever the format.

A file is streamed: rows go to the staging area in chunks of :data:`CHUNK` as they are parsed, so
memory does not grow with the file. Each row becomes one staged ``(identity, ref)`` pair per segment
it has a status for (``ref`` packs the part, the line, the segment and the status: see
:func:`~store.queries.audience_staging.ref`), or one reject:

- the identity is the configured column (``PUSHGATE_SEGMENTS_IDENTITY_COLUMN``);
- the status is ``segmentMembership.status`` (the file's own segment, from its name) or
  ``segmentMembership.ups.{segmentId}.status`` (one per segment), valued ``realized``, ``existing``
  or ``exited`` (:data:`STATUS_CODES`);
- a row whose identity is empty, holds a NUL character (PostgreSQL text cannot) or, in JSON, a
  lone surrogate is rejected with that reason, on every database alike (:func:`identity_problem`);
- an unreadable row is rejected and counted (:class:`PartStats`): the importer fails a file whose
  unreadable rows exceed the configured fraction.

A file that cannot be applied at all raises :class:`SegmentFileProblem` (its message is the ledger's
reason); the ``check_columns`` callback of :class:`ReadOptions` raises :class:`Blocked` for a
governance block. :class:`Batches` is what the readers of each format stage through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from store.queries.audience_staging import MAX_SEGMENTS, StagedReject, StagedRow

#: Rows staged per round trip.
CHUNK = 5000

#: Status names of the exports and the numbers they are staged as.
STATUS_CODES = {"realized": 1, "existing": 2, "exited": 3}
STATUS_NAMES = ("", "realized", "existing", "exited")
SINGLE_STATUS = "segmentMembership.status"
PER_SEGMENT = re.compile(r"segmentMembership\.ups\.(?P<segment>[^.]+)\.status")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates


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


def status_code(value: str) -> int | None:
    return STATUS_CODES.get(value.strip().lower())


def identity_problem(identity: str) -> str | None:
    """Why an identity cannot be staged, or None. PostgreSQL text holds no NUL character, and no
    database takes a lone surrogate (JSON's ``"\\ud800"``): such a row is refused here, on every
    database alike, rather than failing the whole export when it is staged."""
    if not identity:
        return "empty identity"
    if "\x00" in identity:
        return "identity contains a NUL character"
    if not identity.isascii():
        try:
            identity.encode("utf-8")
        except UnicodeEncodeError:
            return "identity is not valid Unicode (a lone surrogate)"
    return None


def storable(identity: str | None) -> str | None:
    """An identity as a reject can keep it: NUL characters and lone surrogates replaced (U+FFFD)."""
    if identity is None or (identity.isascii() and "\x00" not in identity):
        return identity or None
    return _UNSTORABLE.sub("\ufffd", identity)


def unknown_status(value: str) -> str:
    if not value.strip():
        return "empty status"
    return f"unknown status {value[:60]!r} (expected realized, existing or exited)"


class Batches:
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
        self.rejects.append((self.part, line, storable(identity), reason, None))
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
