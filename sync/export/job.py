"""The ``logs`` sync job: broadLog, trackingLog, quarantine and preferences out to the Platform, and
the erased people's delete jobs.

One run, for each requested stream (``--stream``, else the configuration's ``export.streams``,
else all four):

1. **Guardrail** (:mod:`sync.export.guardrail`). A stream runs at most every
   ``PUSHGATE_SYNC_EXPORT_INTERVAL_HOURS`` (at least 4); the run claims it, or it is refused with
   the time it may run again (``--force`` overrides); when every requested stream is refused the
   run ends ``refused`` and nothing is sent.
2. **Rows** after the stream's watermark are read in order (:mod:`sync.export.tables`), mapped to
   XDM and validated; a row that cannot be sent is a rejected row (:mod:`sync.export.stream`).
3. **Transport.** Up to ``PUSHGATE_SYNC_EXPORT_BATCH_THRESHOLD`` new rows go through streaming
   ingestion, a larger backlog through batch ingestion (:func:`export_stream` chooses;
   :mod:`sync.export.stream` sends).
4. **Watermark.** It moves only after the Platform took the records before it, in the same
   transaction as those records' rejects; a crash or an outage loses nothing
   (:mod:`sync.export.stream`).
5. **Summary** per stream (:func:`export_stream`'s outcome): rows read, records sent, rejected,
   messages retried, the watermark, the transport used, and the rows left for a later run because
   they are newer than the run's horizon (:func:`waiting_rows`).
6. **Erasures.** After the streams, every erased person not yet sent goes to the Privacy Service
   as a delete job (:mod:`sync.export.privacy`), whatever ``--stream`` names; the outcome
   ``privacy`` (people read, delete jobs sent) appears only when some were pending. The guardrail
   does not hold them back: a run whose streams are all refused still sends them (and then ends
   ``succeeded`` with the streams skipped); with none pending it ends ``refused`` as before.

Only a fault of the record itself makes a rejected row: a row that cannot be mapped or fails the
shipped schema (step 2), or a record a streaming 207 refuses for its own content (its XDM
validation; :func:`sync.platform.errors.judge` is the rule). A fault of the set-up stops the stream
like an outage, without a rejected row: an unknown dataset, a schema that is not the dataset's, a
wrong org or inlet, even when the Platform reports it per message in a 207 (the dataset and schema
a restarted or cleaned-up Platform forgot), and any request refused as a whole (400, 401/403, 404,
413, 5xx after the retries; a batch the Platform refuses or fails). The stream's outcome is
``failed`` with one line naming the problem and what to fix (``flask --app wsgi sync provision``
for a dataset or schema), the run fails, the watermark stays, and the next run sends the rows.

Provisioning (:mod:`sync.provision`) must have run: it stores each stream's dataset id and schema
``$id`` in ``sync_state`` (``dataset:<stream>``, ``schema:<stream>``). The sync configuration is
the one loaded at the start of the run (:func:`sync.config.sync_config`, kept per process).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.errors import ConfigError, ExternalError
from store.clock import Horizon, horizon
from store.queries import state
from store.types import iso_z, utcnow
from sync.config import sync_config
from sync.export.config import ExportConfig, Target, check_settings, export_config, provisioned
from sync.export.guardrail import claim_streams
from sync.export.privacy import send_erasures
from sync.export.stream import Export, Stats, resolve_batch
from sync.export.tables import TABLES, ExportTable
from sync.platform.client import Platform
from sync.runs import FileOutcome, RunContext, RunRefused, SyncError
from sync.xdm import STREAMS

JOB = "logs"

#: The Platform the job talks to; tests replace it (a local peer's settings, no real sleeps).
make_platform: Any = Platform


def run(context: RunContext) -> None:
    """The job (``sync.service.JOBS["logs"]``): claim the requested streams, then export each one."""
    settings = context.settings
    try:
        config = export_config(settings, sync_config(settings))
    except ConfigError as exc:
        raise SyncError(str(exc)) from None
    requested = context.options.get("streams") or config.streams
    unknown = [name for name in requested if name not in TABLES]
    if unknown:
        raise SyncError(f"unknown stream {unknown[0]!r}; streams: {', '.join(STREAMS)}")
    streams = [name for name in STREAMS if name in requested]
    check_settings(settings, streaming=True)
    targets = provisioned(context.sessions, streams)
    force = bool(context.options.get("force"))
    interval = timedelta(hours=settings.sync_export_interval_hours)

    with make_platform(settings) as platform:
        try:
            platform.tokens.token()
        except ExternalError as exc:
            raise SyncError(f"cannot authenticate with Adobe IMS: {exc}") from None
        refused: RunRefused | None = None
        try:
            claimed = claim_streams(context, streams, utcnow(), interval, force=force)
        except RunRefused as exc:  # the guardrail limits exports, not deletions
            refused, claimed = exc, []
        for stream, forced in claimed:
            context.file(export_stream(context, platform, stream, targets[stream], forced=forced, config=config))
        erasures = send_erasures(context, platform, config.identityNamespace)
        if erasures is not None:
            context.file(erasures)
        elif refused is not None:
            raise refused


def export_stream(
    context: RunContext, platform: Platform, stream: str, target: Target, *, forced: bool, config: ExportConfig
) -> FileOutcome:
    """Export one claimed stream; the outcome says what was sent and where the watermark is."""
    settings = context.settings
    table = TABLES[stream]
    stats = Stats()
    details: dict[str, Any] = {"dataset": target.dataset_id, "forced": forced}
    try:
        resumed = resolve_batch(context, platform, stream)
        if resumed:
            details["resumed_batch"] = resumed
        seconds = settings.sync_export_settle_seconds
        settle = None if seconds is None else timedelta(seconds=seconds)
        with context.sessions() as session:
            limit = horizon(session.connection(), settle)
            cutoff = limit.until
            after = state.get_value(session, f"export:{stream}")
            backlog = int(session.scalar(table.reader.count(after, cutoff)) or 0)
            details.update(waiting_rows(session, table, after, limit))
        mode = "batch" if backlog > settings.sync_export_batch_threshold else "streaming"
        details["mode"], details["backlog"] = mode, backlog
        job = Export(context, platform, stream, table, target, config, after, cutoff, stats)
        if mode == "batch":
            job.send_batches()
        else:
            job.send_streaming()
    except ExternalError as exc:
        stats.failure = str(exc)
    with context.sessions() as session:
        details["watermark"] = state.get_value(session, f"export:{stream}")
    details["retried"], details["unsent"] = stats.retried, stats.unsent
    return FileOutcome(
        name=stream,
        status="failed" if stats.failure else "applied",
        rows=stats.rows,
        applied=stats.sent,
        rejected=stats.rejected,
        reason=stats.failure,
        details=details,
    )


def waiting_rows(session: Session, table: ExportTable, after: str | None, limit: Horizon) -> dict[str, Any]:
    """What this run leaves for a later one because it is newer than the horizon: ``waiting``
    (rows), ``waiting_for`` (what holds them back) and, when that is a fixed delay,
    ``waiting_until`` (when the newest of them may go). Empty when no row waits."""
    count, newest = session.execute(table.reader.waiting(after, limit.until)).one()
    if not count:
        return {}
    found: dict[str, Any] = {"waiting": int(count), "waiting_for": limit.held_by or "stamped after this run began"}
    if newest is not None and limit.delay:
        found["waiting_until"] = iso_z(newest + limit.delay)
    return found
