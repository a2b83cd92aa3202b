"""The ``profiles`` sync job: profile files and personalisation files from Campaign's sFTP inbox.

Campaign is the source of truth for profiles; its workflows drop CSV files (optionally gzipped,
``.csv.gz``) into ``PUSHGATE_SFTP_INBOX``. Each run takes, oldest first, the profile files
(``PUSHGATE_SFTP_PROFILE_PATTERN``), then the personalisation files (``PUSHGATE_SFTP_DATA_PATTERN``).
Only names ending in ``.csv`` or ``.csv.gz`` are taken (a ``profiles.csv.part`` being uploaded is
not), and names starting with a dot are ignored.

**The CSV.** UTF-8 (a BOM is allowed) with a header line. The delimiter is the one the header
line uses: comma, semicolon, tab or pipe. Blank lines are skipped. Surrounding spaces are removed
from keys and named profile fields, not from attribute or table values. **An empty cell gives no
value**: the stored one is kept (there is no clearing a field through a file; the API does that).

**Profile files.** Columns map to profile fields through ``PUSHGATE_SFTP_PROFILE_MAPPING``
(``{"CUSTOMER_ID": "external_id", "mail": "email", "tier": "attributes.loyalty_tier"}``, a column
mapped to ``""`` is ignored). A column the mapping does not name follows the default: a header
equal to a field name (``external_id``, ``email``, ``first_name``, ``last_name``, ``locale``,
``timezone``, ``push_consent``) maps to that field, unless the mapping sends another column there
(then it is ignored); any other column becomes an attribute of that name. Profiles are upserted
by external id: fields given replace the stored ones; **attributes are merged key by key** (a
column replaces that one attribute, the profile's other attributes stay); ``push_consent`` is
``y``, ``n`` or ``u`` (any case), and a new profile without one gets ``u``. A row naming an
external id twice in a file: the later row wins, field by field. After each chunk, subscriptions
that registered earlier with a user key naming one of these profiles (by
``PUSHGATE_RECONCILIATION_FIELD``) are linked to them, in one UPDATE.

**Personalisation files.** ``data_offers.csv`` feeds table ``offers`` (the table name is what
follows the pattern's fixed prefix, up to ``.csv``; letters, digits and ``_``, starting with a
letter). **The first column is the key**; the other columns are the row's fields, which templates
read as ``tables.offers[key].title``. **A file replaces the whole table**: rows absent from the
file are gone once it is applied. A key given twice: the later row wins.

**Rows refused.** A row is *unreadable* when it has more or fewer fields than the header or no
key (external id, or the table key); it is *rejected* when a value is invalid (an e-mail address,
a locale, a time zone, a consent other than y/n/u, a value over its length limit, attributes over
16 KiB). Both kinds are written to the rejects folder after the file is applied, as
``<rejects>/<file name without .csv[.gz]>.rejects.csv`` (columns: ``line``, the file's own
columns, ``reason``; the file's delimiter), and to the run's rejects (``sync_reject``).

**A bad file harms nothing.** A file fails, changes nothing and stays in the inbox when its
unreadable rows exceed ``PUSHGATE_SYNC_MAX_UNREADABLE_FRACTION`` of its rows, when its key column
is missing, or when it is not UTF-8 CSV (or not gzip, for ``.gz``). The ledger remembers it, so
later runs skip it (reported as skipped) until it is re-uploaded (a new size or modification
time makes a new file) or a run is started with ``retry_failed``.

**A file is applied exactly once.** A file is first read whole from the server and checked into
local temporary files (so the database is not held while the network is slow), then applied in
one transaction together with its ledger row (``sync_file``, by name and ``size-mtime``): after a
crash, either all of it and its ledger row are there or none of it is. Only then is the rejects
file written and the file moved to the archive folder. If that move fails, the next run finds the
file in the ledger, does not apply it again, and just archives it.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import logging
import posixpath
import re
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from pydantic import ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import BadRequest
from domain import personalisation
from domain.fields import check_json, storable
from domain.profiles import ImportedProfile, ProfileIn, check_external_id, import_profiles
from store.models import SyncFile
from sync.runs import FileOutcome, RunContext, SyncError
from sync.sources import sftp
from sync.sources.sftp import RemoteFile, SftpSource

log = logging.getLogger("pushgate.sync.profiles")

SOURCE = "sftp"
#: Rows written per statement batch (and per progress step).
CHUNK = 500
#: Refused rows quoted in a failed file's details.
EXAMPLES = 5
EXTENSIONS = (".csv.gz", ".csv")
DELIMITERS = (",", ";", "\t", "|")
PROFILE_FIELDS = ("external_id", "email", "first_name", "last_name", "locale", "timezone", "push_consent")
CONSENTS = ("y", "n", "u")
COLUMN_MAX = 255
LINE_MAX = 1024 * 1024
FIELDS_MAX_BYTES = 16 * 1024
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class FileProblem(Exception):
    """The file as a whole cannot be applied: it fails, changes nothing and stays in the inbox."""


# -- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Folders:
    inbox: str
    archive: str
    rejects: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Folders:
        inbox = posixpath.normpath(settings.sftp_inbox or ".")
        archive = posixpath.normpath(settings.sftp_archive or posixpath.join(inbox, "archive"))
        rejects = posixpath.normpath(settings.sftp_rejects or posixpath.join(inbox, "rejects"))
        if inbox in (archive, rejects):
            raise SyncError(
                "PUSHGATE_SFTP_ARCHIVE and PUSHGATE_SFTP_REJECTS must be other folders than PUSHGATE_SFTP_INBOX "
                "(files left there would be read again)"
            )
        return cls(inbox, archive, rejects)


@dataclass(frozen=True)
class ProfileMapping:
    """``PUSHGATE_SFTP_PROFILE_MAPPING``, checked: CSV column -> field, ``attributes.NAME`` or ``""``."""

    columns: dict[str, str]

    @classmethod
    def from_setting(cls, mapping: dict[str, str]) -> ProfileMapping:
        seen: dict[str, str] = {}
        for column, target in mapping.items():
            name = target.removeprefix("attributes.") if target.startswith("attributes.") else None
            if target and target not in PROFILE_FIELDS and not name:
                raise SyncError(
                    f"PUSHGATE_SFTP_PROFILE_MAPPING: column {column!r} maps to {target!r}, which is neither a "
                    f"profile field ({', '.join(PROFILE_FIELDS)}) nor attributes.NAME"
                )
            if target and target in seen:
                raise SyncError(
                    f"PUSHGATE_SFTP_PROFILE_MAPPING: columns {seen[target]!r} and {column!r} both map to {target!r}"
                )
            seen[target] = column
        return cls(dict(mapping))

    def resolve(self, header: Sequence[str]) -> list[tuple[str, str] | None]:
        """Per column: ``("field", name)``, ``("attribute", name)`` or None (ignored)."""
        taken = {target for target in self.columns.values() if target in PROFILE_FIELDS}
        targets: list[tuple[str, str] | None] = []
        for column in header:
            target = self.columns.get(column)
            if target is None and column in PROFILE_FIELDS:
                target = "" if column in taken else column
            if target is None:
                target = f"attributes.{column}"
            if not column or not target:
                targets.append(None)
            elif target.startswith("attributes."):
                targets.append(("attribute", target.removeprefix("attributes.")))
            else:
                targets.append(("field", target))
        given = [t for t in targets if t is not None]
        duplicated = next((t for i, t in enumerate(given) if t in given[:i]), None)
        if duplicated is not None:
            raise FileProblem(f"two columns give {duplicated[0]} {duplicated[1]!r}")
        if ("field", "external_id") not in given:
            source = next((c for c, t in self.columns.items() if t == "external_id"), "external_id")
            raise FileProblem(f"no external_id column (expected a column named {source!r})")
        return targets


# -- the job --------------------------------------------------------------------------------------


def run(context: RunContext) -> None:
    """Take every profile file, then every personalisation file, in the sFTP inbox."""
    settings = context.settings
    mapping = ProfileMapping.from_setting(settings.sftp_profile_mapping)
    folders = Folders.from_settings(settings)
    with sftp.connect(settings) as source:
        profile_files = _taken(source.files(folders.inbox, settings.sftp_profile_pattern))
        names = {f.name for f in profile_files}
        data_files = [f for f in _taken(source.files(folders.inbox, settings.sftp_data_pattern)) if f.name not in names]
        for remote in profile_files:
            _take(context, source, folders, remote, ProfileFile(mapping, settings.reconciliation_field))
        for remote in data_files:
            _take(context, source, folders, remote, DataFile(remote.name, settings.sftp_data_pattern))


def _taken(files: list[RemoteFile]) -> list[RemoteFile]:
    kept = []
    for remote in files:
        if remote.name.startswith(".") or not remote.name.lower().endswith(EXTENSIONS):
            log.debug("sFTP inbox: %s ignored (not a .csv or .csv.gz file)", remote.name)
        else:
            kept.append(remote)
    return kept


def _stem(name: str) -> str:
    for extension in EXTENSIONS:
        if name.lower().endswith(extension):
            return name[: -len(extension)]
    return name


def rejects_name(name: str) -> str:
    """The rejects file of ``name``: ``profiles_0412.csv.gz`` -> ``profiles_0412.rejects.csv``."""
    return f"{_stem(name)}.rejects.csv"


# -- one file -------------------------------------------------------------------------------------


class Kind(Protocol):
    """What differs between profile files and personalisation files."""

    job: str

    def read_header(self, header: list[str]) -> None:
        """Check the header; raise :class:`FileProblem` when the file cannot be applied."""

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


def _take(context: RunContext, source: SftpSource, folders: Folders, remote: RemoteFile, kind: Kind) -> None:
    """Apply one file exactly once (see the module docstring), then archive it."""
    with context.sessions() as session:
        known = session.scalar(
            select(SyncFile).where(
                SyncFile.source == SOURCE, SyncFile.name == remote.name, SyncFile.etag == remote.etag
            )
        )
    if known is not None and known.status == "applied":
        details: dict[str, Any] = {}
        note = _archive(source, folders, remote, details)
        context.file(
            FileOutcome(remote.name, "skipped", reason=f"already applied in run {known.run_id}{note}", details=details)
        )
        return
    if known is not None and not context.options.get("retry_failed"):
        reason = f"{known.status} in run {known.run_id}: {known.reason}; left in the inbox until retried"
        context.file(FileOutcome(remote.name, "skipped", reason=reason))
        return
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as rows_file,
        tempfile.TemporaryFile("w+", encoding="utf-8") as rejects_file,
    ):
        try:
            staged = _stage(context, source, folders.inbox, remote, kind, rows_file, rejects_file)
        except FileProblem as exc:
            _fail(context, remote, kind, str(exc), 0, [])
            return
        limit = context.settings.sync_max_unreadable_fraction
        if staged.unreadable > limit * staged.rows:
            reason = f"{staged.unreadable} of {staged.rows} rows unreadable (more than {limit:.2%})"
            _fail(context, remote, kind, reason, staged.rows, staged.examples)
            return
        outcome = _apply(context, remote, kind, staged)
        if outcome.status == "applied":
            _after(source, folders, remote, staged, outcome)
        context.file(outcome)


def _stage(
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
            raise FileProblem("empty file: no header line")
        delimiter = max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","
        reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
        header = [name.strip() for name in next(reader)]
        for name in header:
            _check_column(name)
        named = [name for name in header if name]
        if len(set(named)) != len(named):
            twice = next(name for i, name in enumerate(named) if name in named[:i])
            raise FileProblem(f"column {twice!r} appears twice in the header")
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
            raise FileProblem(f"a line is longer than {LINE_MAX} characters")
        yield line


@contextmanager
def _readable() -> Iterator[None]:
    """Translate what makes a file unreadable as a whole into :class:`FileProblem`."""
    try:
        yield
    except UnicodeDecodeError:
        raise FileProblem("not UTF-8 text") from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise FileProblem(f"not a complete gzip file ({exc})") from None
    except csv.Error as exc:
        raise FileProblem(f"not CSV: {exc}") from None


def _check_column(name: str) -> None:
    if len(name) > COLUMN_MAX:
        raise FileProblem(f"a column name is longer than {COLUMN_MAX} characters")
    try:
        storable(name)
    except PydanticCustomError as exc:
        raise FileProblem(f"a column name {exc.message()}") from None


def _apply(context: RunContext, remote: RemoteFile, kind: Kind, staged: Staged) -> FileOutcome:
    """One transaction: the ledger row, the rows, the rejects."""
    session = context.sessions()
    try:
        with session.begin():
            session.execute(  # a failed attempt being retried
                delete(SyncFile).where(
                    SyncFile.source == SOURCE, SyncFile.name == remote.name, SyncFile.etag == remote.etag
                )
            )
            ledger = SyncFile(
                job=kind.job, source=SOURCE, name=remote.name, etag=remote.etag, run_id=context.run_id, status="applied"
            )
            session.add(ledger)
            session.flush()  # a second process taking the same file stops here
            applied = kind.apply(session, staged.chunks())
            for line, cells, identity, reason in applied.refused:
                staged.refuse(line, cells, identity, reason, unreadable=False)
            for line, _cells, identity, reason in staged.rejects():
                context.reject(session, remote.name, line, identity, reason)
            context.flush_rejects(session)
            details = {"job": kind.job, **applied.details, "unreadable": staged.unreadable}
            ledger.rows, ledger.applied, ledger.rejected, ledger.details = (
                staged.rows,
                applied.applied,
                staged.rejected,
                details,
            )
    except IntegrityError:
        context.drop_rejects()
        return FileOutcome(remote.name, "skipped", reason="taken at the same time by another run")
    except BaseException:
        context.drop_rejects()
        raise
    finally:
        session.close()
    return FileOutcome(
        remote.name, "applied", rows=staged.rows, applied=applied.applied, rejected=staged.rejected, details=details
    )


def _fail(context: RunContext, remote: RemoteFile, kind: Kind, reason: str, rows: int, examples: list[str]) -> None:
    """Record a file that failed (nothing of it was applied) and report it."""
    details = {"job": kind.job, "examples": examples} if examples else {"job": kind.job}
    try:
        with context.sessions.begin() as session:
            known = session.scalar(
                select(SyncFile).where(
                    SyncFile.source == SOURCE, SyncFile.name == remote.name, SyncFile.etag == remote.etag
                )
            )
            if known is None:
                known = SyncFile(job=kind.job, source=SOURCE, name=remote.name, etag=remote.etag)
                session.add(known)
            known.run_id, known.status, known.reason, known.rows, known.applied, known.rejected = (
                context.run_id,
                "failed",
                reason,
                rows,
                0,
                0,
            )
            known.details = details
    except IntegrityError:  # another run recorded it first
        pass
    log.warning("sync profiles: %s failed and stays in the inbox: %s", remote.name, reason)
    context.file(FileOutcome(remote.name, "failed", rows=rows, reason=reason, details=details))


def _after(source: SftpSource, folders: Folders, remote: RemoteFile, staged: Staged, outcome: FileOutcome) -> None:
    """After the commit: write the rejects file, then archive. Failures are reported, not raised:
    the file is applied, and the ledger keeps the next run from applying it again."""
    if staged.rejected:
        try:
            with tempfile.TemporaryFile() as binary:
                _write_rejects(staged, binary)
                outcome.details["rejects_file"] = source.put(binary, folders.rejects, rejects_name(remote.name))
        except SyncError as exc:
            outcome.details["rejects_error"] = str(exc)
            log.warning("sync profiles: rejects of %s not written: %s", remote.name, exc)
    _archive(source, folders, remote, outcome.details)


def _write_rejects(staged: Staged, binary: IO[bytes]) -> None:
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


def _archive(source: SftpSource, folders: Folders, remote: RemoteFile, details: dict[str, Any]) -> str:
    """Move the file to the archive; returns a note for a reason line."""
    try:
        details["archived_to"] = source.archive(folders.inbox, remote.name, folders.archive)
    except SyncError as exc:
        details["archive_error"] = str(exc)
        log.warning("sync profiles: %s applied but not archived: %s", remote.name, exc)
        return f"; archiving failed: {exc}"
    return "; archived now"


# -- profile files --------------------------------------------------------------------------------


class ProfileFile:
    """Profile rows: mapped, validated through the API's own model, upserted in chunks."""

    job = "profiles"

    def __init__(self, mapping: ProfileMapping, reconciliation_field: str) -> None:
        self.mapping = mapping
        self.reconciliation_field = reconciliation_field
        self.targets: list[tuple[str, str] | None] = []
        self.key = 0
        self.columns: dict[str, str] = {}  # field -> column, for reasons

    def read_header(self, header: list[str]) -> None:
        self.targets = self.mapping.resolve(header)
        self.key = self.targets.index(("field", "external_id"))
        self.columns = {t[1]: header[i] for i, t in enumerate(self.targets) if t is not None and t[0] == "field"}

    def check(self, cells: list[str]) -> tuple[Any, str | None, str | None, bool]:
        external_id = cells[self.key].strip()
        if not external_id:
            return None, None, f"no external_id ({self.columns['external_id']} is empty)", True
        try:
            check_external_id(external_id)
        except BadRequest as exc:
            return None, external_id[:255], exc.message, False
        fields: dict[str, Any] = {}
        attributes: dict[str, Any] = {}
        for target, cell in zip(self.targets, cells, strict=True):
            if target is None or cell == "":
                continue
            kind, name = target
            if kind == "attribute":
                attributes[name] = cell
            elif name != "external_id" and cell.strip():
                fields[name] = cell.strip()
        consent = fields.get("push_consent")
        if consent is not None:
            fields["push_consent"] = consent.lower()
            if fields["push_consent"] not in CONSENTS:
                return None, external_id, f"{self.columns['push_consent']}: push_consent must be y, n or u", False
        try:
            profile = ProfileIn.model_validate({**fields, "attributes": attributes})
        except ValidationError as exc:
            error = exc.errors(include_url=False, include_input=False)[0]
            name = str(error["loc"][0]) if error["loc"] else "row"
            return None, external_id, f"{self.columns.get(name, name)}: {error['msg']}", False
        given = {name: getattr(profile, name) for name in fields}
        return [given, profile.attributes], external_id, None, False

    def apply(self, session: Session, chunks: Iterator[list[tuple[int, list[str], Any]]]) -> Applied:
        result = Applied(details={"created": 0, "updated": 0, "linked": 0})
        for chunk in chunks:
            batch = [ImportedProfile(cells[self.key].strip(), value[0], value[1]) for _line, cells, value in chunk]
            done = import_profiles(session, batch, reconciliation_field=self.reconciliation_field)
            for key in ("created", "updated", "linked"):
                result.details[key] += getattr(done, key)
            for line, cells, _value in chunk:
                external_id = cells[self.key].strip()
                if external_id in done.refused:
                    result.refused.append((line, cells, external_id, f"attributes: {done.refused[external_id]}"))
                else:
                    result.applied += 1
        return result


# -- personalisation files ------------------------------------------------------------------------


def table_name(name: str, pattern: str) -> str:
    """The table a data file feeds: what follows the pattern's fixed prefix, up to the extension."""
    stem = _stem(name)
    prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    if prefix and stem.startswith(prefix):
        stem = stem[len(prefix) :]
    return stem


class DataFile:
    """Personalisation rows: the first column is the key, the other columns the fields."""

    job = "data"

    def __init__(self, name: str, pattern: str) -> None:
        self.table = table_name(name, pattern)
        self.header: list[str] = []

    def read_header(self, header: list[str]) -> None:
        if not _TABLE_NAME.match(self.table):
            raise FileProblem(
                f"table name {self.table!r} (from the file name) must be 1 to 64 letters, digits or _, starting "
                "with a letter"
            )
        if not header or not header[0]:
            raise FileProblem("no key column: the first column of a data file is the key and needs a name")
        hidden = next((name for name in header if name.startswith("_")), None)
        if hidden is not None:
            raise FileProblem(f"column {hidden!r}: templates cannot read names starting with _")
        self.header = header

    def check(self, cells: list[str]) -> tuple[Any, str | None, str | None, bool]:
        key = cells[0].strip()
        if not key:
            return None, None, f"no key ({self.header[0]} is empty)", True
        if len(key) > personalisation.KEY_MAX:
            return None, key[:255], f"{self.header[0]}: longer than {personalisation.KEY_MAX} characters", False
        fields = {name: cell for name, cell in zip(self.header[1:], cells[1:], strict=True) if name and cell != ""}
        try:
            storable(key)
            check_json(fields, max_bytes=FIELDS_MAX_BYTES, what="the row")
        except PydanticCustomError as exc:
            return None, key, exc.message(), False
        return fields, key, None, False

    def apply(self, session: Session, chunks: Iterator[list[tuple[int, list[str], Any]]]) -> Applied:
        columns = [name for name in self.header[1:] if name]
        table_id = personalisation.replace_table(session, self.table, self.header[0], columns)
        result = Applied(details={"table": self.table})
        for chunk in chunks:
            personalisation.put_rows(session, table_id, [(cells[0].strip(), value) for _line, cells, value in chunk])
            result.applied += len(chunk)
        return result
