"""The ``segments`` sync job: Platform segment exports from Azure Blob become audiences.

One run:

1. lists the blobs under the prefix and sets aside what is not an export, what the ledger already
   holds and exports that cannot be taken yet (:mod:`sync.segments.planning`);
2. takes each remaining export, oldest first, all of its new parts together: streams every row
   of every part into temporary tables and matches them to profiles, without locking the store
   (:mod:`sync.segments.reader`, :mod:`store.queries.audience_staging`), then applies them in **one**
   transaction with their ledger rows. A crash or a lost connection before the commit leaves
   nothing; the next run takes the export again. A part that fails validation (no identity column,
   too many unreadable rows) or that a governance policy blocks is recorded ``failed`` or
   ``blocked`` with its reason and nothing of the export changes.

Each file's outcome (and ledger row) counts its rows, applied and rejected rows, and per segment
the ``realized``, ``existing`` and ``exited`` rows applied (``exited_unnamed``: members a full
export ended); ``audience_import`` keeps the same per audience and file.

Rows are matched to existing profiles only (``PUSHGATE_RECONCILIATION_FIELD``: external_id or
email); a row that names no profile, or an email several profiles share, is rejected with its
reason: a segment never creates a profile. Each segment id is one audience (named from the sync
configuration's ``audiences.names`` or after the destination and segment). ``realized`` and
``existing`` make a profile a member (``entered_at`` is reset when it comes back after an exit),
``exited`` ends its membership; with ``PUSHGATE_SEGMENTS_EXPORT_MODE=full`` an export also ends
the membership of every member it does not name.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.errors import ConfigError
from domain import audiences
from store.db import engine_of
from store.queries import files
from store.queries.audience_staging import Staging
from store.types import utcnow
from sync.config import SyncConfig, sync_config
from sync.governance import check_file, describe
from sync.runs import FileOutcome, RunContext, SyncError
from sync.segments.names import Export, ExportFile
from sync.segments.planning import Pending, plan
from sync.segments.reader import read_part
from sync.segments.rows import STATUS_NAMES, Blocked, PartStats, ReadOptions, SegmentFileProblem, Segments
from sync.sources.blob import BlobChanged, BlobSource

log = logging.getLogger("pushgate.sync.segments")

JOB = "segments"
SOURCE = "blob"
#: Names of non-export blobs listed in a run's summary (the count is always given).
IGNORED_SHOWN = 10


def run(context: RunContext, source: BlobSource | None = None) -> None:
    """The job (``sync.service.JOBS["segments"]``); ``source`` defaults to the settings' container."""
    settings = context.settings
    if not settings.segments_identity_column:
        raise SyncError(
            "PUSHGATE_SEGMENTS_IDENTITY_COLUMN is not set: name the export column matched to profiles "
            "(e.g. personalEmail.address)"
        )
    try:
        config = sync_config(settings)
    except ConfigError as exc:
        raise SyncError(str(exc)) from None
    if source is None:
        source = BlobSource.from_settings(settings)
    blobs = source.list()
    with context.sessions() as session:
        ledger = files.statuses(session, SOURCE)
    work = plan(blobs, ledger, retry_failed=bool(context.options.get("retry_failed")))
    if work.ignored:
        shown = work.ignored[:IGNORED_SHOWN]
        context.file(
            FileOutcome(
                f"{len(work.ignored)} blob(s) not named like a segment export",
                "skipped",
                reason="expected {destination}_{segmentId}_{YYYYMMdd_HHmmss}[_N].csv|.csv.gz|.json",
                details={"count": len(work.ignored), "names": shown},
            )
        )
    if work.taken:
        context.file(
            FileOutcome(f"{work.taken} file(s) already in the ledger", "skipped", details={"count": work.taken})
        )
    for outcome in work.waiting:
        context.file(outcome)
    importer = _Importer(context, source, config)
    for export, pending in work.ready:
        importer.take(export, pending)


class _PartFailed(Exception):
    def __init__(self, index: int, problem: SegmentFileProblem, stats: PartStats | None) -> None:
        super().__init__(str(problem))
        self.index = index
        self.problem = problem
        self.stats = stats


class _Importer:
    def __init__(self, context: RunContext, source: BlobSource, config: SyncConfig) -> None:
        self.context = context
        self.settings = context.settings
        self.source = source
        self.config = config
        self.engine = engine_of(context.sessions)

    # -- one export ------------------------------------------------------------------------------

    def take(self, export: Export, pending: list[Pending]) -> None:
        segments = Segments()
        started = time.perf_counter()
        with self.engine.connect() as conn:
            staging = Staging(conn, self.settings.reconciliation_field)
            try:
                try:
                    with conn.begin():
                        staging.create()
                        stats = [self._read(index, item, segments, staging) for index, item in enumerate(pending)]
                        read = time.perf_counter()
                        staging.resolve()
                except _PartFailed as failed:
                    self._refuse(pending, failed)
                    return
                except BlobChanged as exc:
                    self._skip(pending, f"{exc}; it is read again at the next run")
                    return
                resolved = time.perf_counter()
                try:
                    self._apply(conn, staging, export, pending, segments, stats)
                    log.info(
                        "export %s: %d rows read in %.2fs, matched to profiles in %.2fs, applied in %.2fs",
                        export.key,
                        sum(part.rows for part in stats),
                        read - started,
                        resolved - read,
                        time.perf_counter() - resolved,
                    )
                except files.AlreadyTaken:
                    self._skip(pending, "taken by another run meanwhile")
            finally:
                self._clean_up(conn, staging)

    @staticmethod
    def _clean_up(conn: Connection, staging: Staging) -> None:
        """Drop the export's temporary tables (the connection goes back to the pool)."""
        try:
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                staging.drop()
        except SQLAlchemyError:  # a broken connection: the pool must not hand it out again
            log.warning("could not drop the staging tables; discarding the connection", exc_info=True)
            conn.invalidate()

    def _read(self, index: int, item: Pending, segments: Segments, staging: Staging) -> PartStats:
        def check_columns(columns: Sequence[str]) -> None:
            violations = check_file(columns, self.config)
            if violations:
                raise Blocked(describe(violations))

        options = ReadOptions(
            identity_column=self.settings.segments_identity_column,
            delimiter=self.settings.segments_delimiter,
            check_columns=check_columns,
            progress=self.context.advance,
        )
        try:
            with self.source.open(item.file.name, item.etag) as stream:
                stats = read_part(stream, item.file, index, segments, staging, options)
        except SegmentFileProblem as problem:
            raise _PartFailed(index, problem, None) from None
        limit = self.settings.sync_max_unreadable_fraction
        if stats.unreadable and stats.unreadable > limit * stats.rows:
            too_many = SegmentFileProblem(
                f"{stats.unreadable} of {stats.rows} rows unreadable (more than {limit:.2%} allowed)"
                + (
                    f"; first at line {stats.first_unreadable[0]}: {stats.first_unreadable[1]}"
                    if stats.first_unreadable
                    else ""
                )
            )
            raise _PartFailed(index, too_many, stats)
        return stats

    # -- outcomes that change nothing --------------------------------------------------------------

    def _skip(self, pending: list[Pending], reason: str) -> None:
        for item in pending:
            self.context.file(FileOutcome(item.file.name, "skipped", reason=reason))

    def _refuse(self, pending: list[Pending], failed: _PartFailed) -> None:
        """Record the part that failed or was blocked; the export's other parts wait for it."""
        item = pending[failed.index]
        status, reason = failed.problem.status, str(failed.problem)
        rows = failed.stats.rows if failed.stats else 0
        details = {"export": item.file.key}
        with self.context.sessions.begin() as session:
            files.record_refused(
                session,
                job=JOB,
                source=SOURCE,
                name=item.file.name,
                etag=item.etag,
                run_id=self.context.run_id,
                status=status,
                reason=reason,
                rows=rows,
                details=details,
            )
        self.context.file(FileOutcome(item.file.name, status, rows=rows, reason=reason, details=details))
        for other in pending:
            if other is not item:
                self.context.file(
                    FileOutcome(other.file.name, "skipped", reason=f"not applied: {item.file.name} {status}")
                )

    # -- applying --------------------------------------------------------------------------------

    def _apply(
        self,
        conn: Connection,
        staging: Staging,
        export: Export,
        pending: list[Pending],
        segments: Segments,
        stats: list[PartStats],
    ) -> None:
        now = utcnow()
        key = export.key
        full = self.settings.segments_export_mode == "full"
        context = self.context
        with staging.store_transaction():
            session = Session(bind=conn)
            try:
                file_ids = self._ledger(session, pending, key)
                audience_ids = [self._audience(session, segment_id, export.first, now) for segment_id in segments.ids]
                for number, audience_id in enumerate(audience_ids):
                    staging.upsert_members(audience_id, number, now, key)
                    staging.exit_members(audience_id, number, now, key)
                unmatched = staging.unmatched_counts()
                implicit = {
                    number: staging.exit_unnamed(audience_id, now, key) if full else 0
                    for number, audience_id in enumerate(audience_ids)
                }
                for number, exits in implicit.items():
                    if exits:
                        stats[0].tally(number)  # the first file of the export carries them
                rejected: Counter[int] = Counter()
                for part, line, identity, reason in staging.rejects():
                    context.reject(session, pending[part].file.name, line, identity, reason)
                    rejected[part] += 1
                context.flush_rejects(session)
                outcomes = self._record(
                    session, pending, file_ids, audience_ids, segments, stats, unmatched, implicit, rejected, key
                )
                session.flush()
            except BaseException:
                context.drop_rejects()
                raise
            finally:
                session.close()
        for outcome in outcomes:
            context.file(outcome)

    def _ledger(self, session: Session, pending: list[Pending], key: str) -> list[int]:
        """The export's ledger rows, written first so that a second process taking the same files
        fails (unique name and ETag) before doing the work."""
        pairs = [(item.file.name, item.etag) for item in pending]
        files.forget(
            session, SOURCE, [pair for item, pair in zip(pending, pairs, strict=True) if item.retry], only_refused=True
        )
        return files.take(
            session, job=JOB, source=SOURCE, run_id=self.context.run_id, files=pairs, details={"export": key}
        )

    def _audience(self, session: Session, segment_id: str, file: ExportFile, now: datetime) -> int:
        """The audience of a segment id, created on first sight; a name from the sync config wins."""
        configured = self.config.audiences.names.get(segment_id)
        name = configured or f"{file.destination}: {segment_id}"
        return audiences.for_segment(session, segment_id, name, rename=configured is not None, now=now)

    def _record(
        self,
        session: Session,
        pending: list[Pending],
        file_ids: list[int],
        audience_ids: list[int],
        segments: Segments,
        stats: list[PartStats],
        unmatched: dict[tuple[int, int, int], int],
        implicit: dict[int, int],
        rejected: Counter[int],
        key: str,
    ) -> list[FileOutcome]:
        """Counts on the ledger rows and per audience; the run's outcomes."""
        mode = self.settings.segments_export_mode
        outcomes = []
        imports = []
        for index, (item, file_id, part) in enumerate(zip(pending, file_ids, stats, strict=True)):
            per_segment: dict[str, dict[str, int]] = defaultdict(dict)
            for number, tally in sorted(part.counts.items()):
                counts = {
                    STATUS_NAMES[code]: tally[code] - unmatched.get((index, number, code), 0) for code in (1, 2, 3)
                }
                if index == 0 and implicit.get(number):
                    counts["exited_unnamed"] = implicit[number]
                per_segment[segments.ids[number]] = counts
                imports.append(
                    {
                        "audience_id": audience_ids[number],
                        "file_id": file_id,
                        "entered": counts["realized"],
                        "existing": counts["existing"],
                        "exited": counts["exited"] + counts.get("exited_unnamed", 0),
                    }
                )
            details = {"export": key, "mode": mode, "segments": dict(per_segment)}
            refused = rejected[index]
            applied = part.rows - refused
            files.set_counts(session, file_id, rows=part.rows, applied=applied, rejected=refused, details=details)
            outcomes.append(
                FileOutcome(
                    item.file.name, "applied", rows=part.rows, applied=applied, rejected=refused, details=details
                )
            )
        audiences.record_imports(session, imports)
        return outcomes
