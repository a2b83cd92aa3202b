"""The ``profiles`` sync job: each run takes the inbox's profile files, then its personalisation files.

Each run lists ``PUSHGATE_SFTP_INBOX`` and takes, oldest first, the profile files
(``PUSHGATE_SFTP_PROFILE_PATTERN``; :mod:`sync.profiles.profile_rows`), then the personalisation
files (``PUSHGATE_SFTP_DATA_PATTERN``; :mod:`sync.profiles.tables`). Only names ending in ``.csv``
or ``.csv.gz`` are taken (a ``profiles.csv.part`` being uploaded is not), and names starting with
a dot are ignored.

**A bad file harms nothing.** A file fails, changes nothing and stays in the inbox when its
unreadable rows exceed ``PUSHGATE_SYNC_MAX_UNREADABLE_FRACTION`` of its rows, when its key column
is missing, or when it is not UTF-8 CSV (or not gzip, for ``.gz``). The ledger remembers it, so
later runs skip it (reported as skipped) until it is re-uploaded (a new size or modification
time makes a new file) or a run is started with ``retry_failed``.

**A file is applied exactly once.** A file is first read whole from the server and checked into
local temporary files (:func:`sync.profiles.reader.stage`: the database is not held while the
network is slow), then applied in one transaction together with its ledger row (``sync_file``, by
name and ``size-mtime``): after a crash, either all of it and its ledger row are there or none of
it is. Only then is the rejects file written and the file moved to the archive folder. If that
move fails, the next run finds the file in the ledger, does not apply it again, and just archives
it.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from sqlalchemy.exc import IntegrityError

from store.queries import files
from sync.profiles.profile_rows import ProfileFile
from sync.profiles.reader import EXTENSIONS, Kind, ProfileFileProblem, Staged, rejects_name, stage, write_rejects
from sync.profiles.settings import Folders, ProfileMapping
from sync.profiles.tables import DataFile
from sync.runs import FileOutcome, RunContext, SyncError
from sync.sources import sftp
from sync.sources.sftp import RemoteFile, SftpSource

log = logging.getLogger("pushgate.sync.profiles")

SOURCE = "sftp"


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


def _take(context: RunContext, source: SftpSource, folders: Folders, remote: RemoteFile, kind: Kind) -> None:
    """Apply one file exactly once (see the module docstring), then archive it."""
    with context.sessions() as session:
        known = files.find(session, SOURCE, remote.name, remote.etag)
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
            staged = stage(context, source, folders.inbox, remote, kind, rows_file, rejects_file)
        except ProfileFileProblem as exc:
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


def _apply(context: RunContext, remote: RemoteFile, kind: Kind, staged: Staged) -> FileOutcome:
    """One transaction: the ledger row, the rows, the rejects."""
    session = context.sessions()
    try:
        with session.begin():
            key = (remote.name, remote.etag)
            files.forget(session, SOURCE, [key])  # a failed attempt being retried
            # A second process taking the same file stops here.
            (file_id,) = files.take(
                session, job=kind.job, source=SOURCE, run_id=context.run_id, files=[key], details={}
            )
            applied = kind.apply(session, staged.chunks())
            for line, cells, identity, reason in applied.refused:
                staged.refuse(line, cells, identity, reason, unreadable=False)
            for line, _cells, identity, reason in staged.rejects():
                context.reject(session, remote.name, line, identity, reason)
            context.flush_rejects(session)
            details = {"job": kind.job, **applied.details, "unreadable": staged.unreadable}
            files.set_counts(
                session, file_id, rows=staged.rows, applied=applied.applied, rejected=staged.rejected, details=details
            )
    except (files.AlreadyTaken, IntegrityError):
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
            files.record_refused(
                session,
                job=kind.job,
                source=SOURCE,
                name=remote.name,
                etag=remote.etag,
                run_id=context.run_id,
                status="failed",
                reason=reason,
                rows=rows,
                details=details,
            )
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
                write_rejects(staged, binary)
                outcome.details["rejects_file"] = source.put(binary, folders.rejects, rejects_name(remote.name))
        except SyncError as exc:
            outcome.details["rejects_error"] = str(exc)
            log.warning("sync profiles: rejects of %s not written: %s", remote.name, exc)
    _archive(source, folders, remote, outcome.details)


def _archive(source: SftpSource, folders: Folders, remote: RemoteFile, details: dict[str, Any]) -> str:
    """Move the file to the archive; returns a note for a reason line."""
    try:
        details["archived_to"] = source.archive(folders.inbox, remote.name, folders.archive)
    except SyncError as exc:
        details["archive_error"] = str(exc)
        log.warning("sync profiles: %s applied but not archived: %s", remote.name, exc)
        return f"; archiving failed: {exc}"
    return "; archived now"
