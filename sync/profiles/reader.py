"""Reading one sFTP file: a CSV checked row by row into local temporary files, and its rejects file.

**The CSV.** UTF-8 (a BOM is allowed) with a header line. The delimiter is the one the header
line uses: comma, semicolon, tab or pipe. Blank lines are skipped. Surrounding spaces are removed
from keys and named profile fields, not from attribute or table values. **An empty cell gives no
value**: the stored one is kept (there is no clearing a field through a file; the API does that).
A ``.csv.gz`` file is gunzipped on the way.

**Rows refused.** A row is *unreadable* when it has more or fewer fields than the header or no
key (external id, or the table key); it is *rejected* when a value is invalid (an e-mail address,
a locale, a time zone, a consent other than y/n/u, a value over its length limit, attributes over
16 KiB). Both kinds are written to the rejects folder after the file is applied, as
``<rejects>/<file name without .csv[.gz]>.rejects.csv`` (columns: ``line``, the file's own
columns, ``reason``; the file's delimiter; :func:`write_rejects`), and to the run's rejects
(``sync_reject``).

:func:`stage` reads a file whole from the server (so the database is not held while the network is
slow) and checks each row through the file's :class:`Kind` (profile rows:
:mod:`sync.profiles.profile_rows`; lookup tables: :mod:`sync.profiles.tables`) into a
:class:`Staged`. A file that cannot be applied as a whole (not UTF-8 CSV, not gzip, no header, a
column name twice or too long, a header its kind refuses) raises :class:`ProfileFileProblem`. Nothing here
writes to the database: :mod:`sync.profiles.job` applies what was staged.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from pydantic_core import PydanticCustomError
from sqlalchemy.orm import Session

from domain.fields import storable
from sync.runs import RunContext
from sync.sources.sftp import RemoteFile, SftpSource

#: Rows written per statement batch (and per progress step).
CHUNK = 500
#: Refused rows quoted in a failed file's details.
EXAMPLES = 5
EXTENSIONS = (".csv.gz", ".csv")
DELIMITERS = (",", ";", "\t", "|")
COLUMN_MAX = 255
LINE_MAX = 1024 * 1024


class ProfileFileProblem(Exception):
    """The file as a whole cannot be applied: it fails, changes nothing and stays in the inbox."""


def strip_extension(name: str) -> str:
    for extension in EXTENSIONS:
        if name.lower().endswith(extension):
            return name[: -len(extension)]
    return name


def rejects_name(name: str) -> str:
    """The rejects file of ``name``: ``profiles_0412.csv.gz`` -> ``profiles_0412.rejects.csv``."""
    return f"{strip_extension(name)}.rejects.csv"


class Kind(Protocol):
    """What differs between profile files and personalisation files."""

    job: str

    def read_header(self, header: list[str]) -> None:
        """Check the header; raise :class:`ProfileFileProblem` when the file cannot be applied."""

    def check(self, cells: list[str]) -> tuple[Any, str | None, str | None, bool]:
        """``(staged value or None, identity, reason refused, unreadable)`` for one row."""

    def apply(self, session: Session, chunks: Iterator[list[tuple[int, list[str], Any]]]) -> Applied:
        """Write the staged rows, in the file's transaction."""


@dataclass
class Applied:
    applied: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    #: rows refused while applying: (line, cells, identity, reason)
    refused: list[tuple[int, list[str], str | None, str]] = field(default_factory=list)


@dataclass
class Staged:
    """A file read and checked into local temporary files."""

    header: list[str]
    delimiter: str
    rows_file: IO[str]  # JSON lines: [line, cells, staged value]
    rejects_file: IO[str]  # JSON lines: [line, cells, identity, reason]
    rows: int = 0
    good: int = 0
    rejected: int = 0
    unreadable: int = 0
    examples: list[str] = field(default_factory=list)

    def refuse(self, line: int, cells: list[str], identity: str | None, reason: str, *, unreadable: bool) -> None:
        self.rejected += 1
        self.unreadable += unreadable
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"line {line}: {reason}")
        self.rejects_file.write(json.dumps([line, cells, identity, reason]) + "\n")

    def chunks(self) -> Iterator[list[tuple[int, list[str], Any]]]:
        self.rows_file.seek(0)
        lines = (json.loads(text) for text in self.rows_file)
        while chunk := list(itertools.islice(lines, CHUNK)):
            yield [(line, cells, value) for line, cells, value in chunk]

    def rejects(self) -> Iterator[tuple[int, list[str], str | None, str]]:
        self.rejects_file.seek(0)
        for text in self.rejects_file:
            line, cells, identity, reason = json.loads(text)
            yield line, cells, identity, reason


def stage(
    context: RunContext,
    source: SftpSource,
    inbox: str,
    remote: RemoteFile,
    kind: Kind,
    rows_file: IO[str],
    rejects_file: IO[str],
) -> Staged:
    """Read ``remote`` from the server and check every row into temporary files."""
    with _text(source, inbox, remote) as text, _readable():
        lines = _lines(text)
        first = next(lines, "")
        if not first.strip():
            raise ProfileFileProblem("empty file: no header line")
        delimiter = max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","
        reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
        header = [name.strip() for name in next(reader)]
        for name in header:
            _check_column(name)
        named = [name for name in header if name]
        if len(set(named)) != len(named):
            twice = next(name for i, name in enumerate(named) if name in named[:i])
            raise ProfileFileProblem(f"column {twice!r} appears twice in the header")
        kind.read_header(header)
        staged = Staged(
            header,
            delimiter,
            rows_file,
            rejects_file,
        )
        line = reader.line_num
        for cells in reader:
            start, line = line + 1, reader.line_num
            if not cells:
                continue
            staged.rows += 1
            if len(cells) != len(header):
                width = f"{len(cells)} fields where the header has {len(header)}"
                staged.refuse(start, cells, None, width, unreadable=True)
            else:
                value, identity, refused, unreadable = kind.check(cells)
                if refused is not None:
                    staged.refuse(start, cells, identity, refused, unreadable=unreadable)
                else:
                    staged.good += 1
                    staged.rows_file.write(json.dumps([start, cells, value]) + "\n")
            if staged.rows % CHUNK == 0:
                context.advance(CHUNK)
        context.advance(staged.rows % CHUNK)
        return staged


@contextmanager
def _text(source: SftpSource, folder: str, remote: RemoteFile) -> Iterator[IO[str]]:
    with source.open(folder, remote) as raw:
        text: IO[str]
        if remote.name.lower().endswith(".gz"):
            text = io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="rb"), encoding="utf-8-sig", newline="")
        else:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        with text:
            yield text


def _lines(text: IO[str]) -> Iterator[str]:
    """The lines of ``text``, each at most :data:`LINE_MAX` characters (a file without line breaks
    must not be read into memory whole)."""
    while line := text.readline(LINE_MAX + 1):
        if len(line) > LINE_MAX:
            raise ProfileFileProblem(f"a line is longer than {LINE_MAX} characters")
        yield line


@contextmanager
def _readable() -> Iterator[None]:
    """Translate what makes a file unreadable as a whole into :class:`ProfileFileProblem`."""
    try:
        yield
    except UnicodeDecodeError:
        raise ProfileFileProblem("not UTF-8 text") from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise ProfileFileProblem(f"not a complete gzip file ({exc})") from None
    except csv.Error as exc:
        raise ProfileFileProblem(f"not CSV: {exc}") from None


def _check_column(name: str) -> None:
    if len(name) > COLUMN_MAX:
        raise ProfileFileProblem(f"a column name is longer than {COLUMN_MAX} characters")
    try:
        storable(name)
    except PydanticCustomError as exc:
        raise ProfileFileProblem(f"a column name {exc.message()}") from None


def write_rejects(staged: Staged, binary: IO[bytes]) -> None:
    """The rejects CSV: ``line``, the file's columns (cut or padded to the header), ``reason``."""
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
    try:
        writer = csv.writer(text, delimiter=staged.delimiter)
        writer.writerow(["line", *staged.header, "reason"])
        width = len(staged.header)
        for line, cells, _identity, reason in staged.rejects():
            writer.writerow([line, *(cells + [""] * width)[:width], reason])
        text.flush()
    finally:
        text.detach()
    binary.seek(0)
