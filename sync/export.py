"""The ``logs`` sync job: broadLog, trackingLog, quarantine and preferences out to the Platform.

One run, for each requested stream (``--stream``, else the configuration's ``export.streams``,
else all four):

1. **Guardrail.** A stream runs at most every ``PUSHGATE_SYNC_EXPORT_INTERVAL_HOURS`` (at least 4,
   the integration pattern's rule). The run claims the stream by moving ``last_run_at`` of its
   ``sync_state`` row with a compare-and-set, so two processes never both run it; a stream that ran
   less than the interval ago is refused with the time it may run again, unless ``force`` (CLI
   ``--force``), which is logged. When every requested stream is refused, nothing is sent and the
   run ends ``refused`` (:class:`~sync.runs.RunRefused`): ``broadlog may run again at
   2026-11-28T21:40:00Z (every 4 h; --force overrides)``. A claimed stream counts as run, whether
   it then succeeds or fails (its watermark keeps anything not sent for the next run).
2. **Rows** after the stream's watermark are read in order (:mod:`sync.export_sources`), mapped to
   XDM (:mod:`sync.xdm.records`) and validated against the shipped schema (:mod:`sync.xdm`). A
   row that cannot be mapped (no identity) or is invalid is not sent: it is recorded among the
   run's rejected rows (file = stream, line = source row id, identity = its ``_id``, reason).
3. **Transport.** Up to ``PUSHGATE_SYNC_EXPORT_BATCH_THRESHOLD`` new rows go through streaming
   ingestion (:mod:`sync.platform.streaming`): envelopes packed into requests under 1 MB, sent by
   a second thread while the next request is prepared. A larger backlog goes through batch
   ingestion (:mod:`sync.platform.batch`): JSON-lines files of up to 256 MB, at most
   :data:`BATCH_RECORDS` records a batch, completed and polled until the batch succeeds.
4. **Watermark.** It moves only after the Platform took the records before it, in the same
   transaction as those records' rejects: per streaming request, per successful batch. A crash or
   an outage therefore loses nothing, and a new run starts after the last request taken. The
   records that can be sent twice are those of the one request in flight at a crash (or answered
   by a lost connection), with the same ``_id``s. A batch carries its own marker
   (``batch:<stream>`` = batch id and the watermark it reaches), written before it is completed:
   the next run looks the batch up and moves the watermark when it succeeded, or sends the rows
   again when it failed or was never completed (then aborted).
5. **Summary** per stream: rows read, records sent, rejected, messages retried, the watermark,
   the transport used.

Streaming requests whose messages still fail after the sender's attempts stop the stream: the
watermark stays before the first record not taken (records after it in the same request that the
Platform did take are sent again by the next run, with the same ``_id``).

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
``$id`` in ``sync_state`` (``dataset:<stream>``, ``schema:<stream>``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.errors import ConfigError, ExternalError, PermanentError
from store.clock import Horizon, horizon
from store.models import SyncState
from store.types import utcnow
from sync import state
from sync.export_sources import SOURCES, Source
from sync.governance import ENV_VAR, load_sync_config
from sync.platform.batch import FAILED_STATES, SUCCESS, BatchIngestion, JsonLinesFiles
from sync.platform.client import Platform
from sync.platform.streaming import MAX_REQUEST_BYTES, Delivery, Envelopes, StreamingSender, dumps, fits
from sync.runs import FileOutcome, RunContext, RunRefused, SyncError
from sync.xdm import STREAMS, Validator, tenant_key, validator
from sync.xdm.records import DEFAULT_NAMESPACE, NoIdentity

log = logging.getLogger("pushgate.sync.export")

JOB = "logs"
#: Rows read from the database at a time.
READ_CHUNK = 1000
#: Prepared requests waiting for the sending thread.
QUEUE_DEPTH = 4
#: Rows (rejected ones included) in one unit of work at most.
UNIT_ROWS = 5000
#: Records of one ingestion batch at most.
BATCH_RECORDS = 500_000

#: The Platform the job talks to; tests replace it (a local peer's settings, no real sleeps).
make_platform: Any = Platform


StreamName = Literal["broadlog", "trackinglog", "quarantine", "preferences"]
_ALL: tuple[StreamName, ...] = ("broadlog", "trackinglog", "quarantine", "preferences")


class ExportConfig(BaseModel):
    """The ``export`` section of the sync configuration file (all optional)::

    {"export": {"identityNamespace": "CRMID", "streams": ["broadlog", "trackinglog", "quarantine"]}}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    identityNamespace: str = Field(default=DEFAULT_NAMESPACE, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    streams: list[StreamName] = Field(default_factory=lambda: list(_ALL), min_length=1)


def export_config(settings: Settings) -> ExportConfig:
    """The ``export`` section of ``PUSHGATE_SYNC_CONFIG``; ConfigError names the problem on one line."""
    config = load_sync_config(settings.sync_config)
    section = (config.model_extra or {}).get("export", {})
    try:
        return ExportConfig.model_validate(section)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in ("export", *error["loc"]))
        raise ConfigError(f"{ENV_VAR} {settings.sync_config}: {where}: {error['msg']}") from None


def check_settings(settings: Settings, *, streaming: bool) -> None:
    """SyncError naming the first missing ``PUSHGATE_AEP_*`` setting."""
    needed = ["aep_client_id", "aep_client_secret", "aep_org_id", "aep_tenant_id"]
    if streaming:
        needed.append("aep_inlet_id")
    for name in needed:
        if not getattr(settings, name):
            raise SyncError(f"PUSHGATE_{name.upper()} is not set")
    try:
        tenant_key(settings.aep_tenant_id)
    except ValueError as exc:
        raise SyncError(f"PUSHGATE_AEP_TENANT_ID: {exc}") from None


# -- the guardrail ------------------------------------------------------------------------------


def _hours(interval: timedelta) -> str:
    hours = interval.total_seconds() / 3600
    return f"{hours:g} h"


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _z(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def claim(
    sessions: sessionmaker[Session], stream: str, now: datetime, interval: timedelta, *, force: bool
) -> tuple[bool, datetime | None]:
    """Claim ``stream`` for a run now: (True, its previous run time) when it may run, (False, the
    time it may run again) when it ran less than ``interval`` ago and ``force`` is not given."""
    key = f"export:{stream}"
    with sessions.begin() as session:
        if state.insert_if_absent(session, key, watermark=None, last_run_at=now):
            return True, None
        row = session.get(SyncState, key)
        assert row is not None
        last = row.last_run_at
        if last is not None and now < last + interval and not force:
            return False, last + interval
        if not state.compare_and_set(session, key, "last_run_at", last, last_run_at=now):
            return False, now + interval  # another process claimed it this instant
        return True, last


# -- the job ------------------------------------------------------------------------------------


def run(context: RunContext) -> None:
    settings = context.settings
    try:
        config = export_config(settings)
    except ConfigError as exc:
        raise SyncError(str(exc)) from None
    requested = context.options.get("streams") or config.streams
    unknown = [name for name in requested if name not in SOURCES]
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
        now = utcnow()
        allowed: list[tuple[str, datetime | None]] = []
        refused: dict[str, list[str]] = {}  # next run time -> streams
        for stream in streams:
            ok, when = claim(context.sessions, stream, now, interval, force=force)
            if ok:
                allowed.append((stream, when))
                if force and when is not None and now < when + interval:
                    log.warning(
                        "sync logs: --force: %s last ran at %s, less than %s ago; exporting anyway",
                        stream,
                        _z(when),
                        _hours(interval),
                    )
                continue
            assert when is not None
            refused.setdefault(_z(when), []).append(stream)
            context.file(
                FileOutcome(
                    name=stream,
                    status="skipped",
                    reason=f"may run again at {_z(when)} (every {_hours(interval)}; --force overrides)",
                    details={"refused": True, "next_run_at": _z(when)},
                )
            )
        if not allowed:
            times = "; ".join(f"{_names(names)} may run again at {when}" for when, names in refused.items())
            raise RunRefused(f"{times} (every {_hours(interval)}; --force overrides)")
        for stream, previous in allowed:
            forced = force and previous is not None and now < previous + interval
            context.file(export_stream(context, platform, stream, targets[stream], forced=forced, config=config))


@dataclass(frozen=True)
class Target:
    dataset_id: str
    schema_id: str


def provisioned(sessions: sessionmaker[Session], streams: list[str]) -> dict[str, Target]:
    """Each stream's dataset and schema, as provisioning stored them."""
    found: dict[str, Target] = {}
    with sessions() as session:
        for stream in streams:
            dataset, schema = (
                state.get_value(session, f"dataset:{stream}"),
                state.get_value(session, f"schema:{stream}"),
            )
            if not dataset or not schema:
                raise SyncError(f"no dataset is provisioned for {stream}: run `flask --app wsgi sync provision` first")
            found[stream] = Target(dataset, schema)
    return found


@dataclass
class Stats:
    rows: int = 0
    sent: int = 0
    rejected: int = 0
    retried: int = 0
    unsent: int = 0
    failure: str | None = None


def export_stream(
    context: RunContext, platform: Platform, stream: str, target: Target, *, forced: bool, config: ExportConfig
) -> FileOutcome:
    """Export one claimed stream; the outcome says what was sent and where the watermark is."""
    settings = context.settings
    source = SOURCES[stream]
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
            backlog = int(session.scalar(source.count(after, cutoff)) or 0)
            details.update(waiting_rows(session, source, after, limit))
        mode = "batch" if backlog > settings.sync_export_batch_threshold else "streaming"
        details["mode"], details["backlog"] = mode, backlog
        job = Export(context, platform, stream, source, target, config, after, cutoff, stats)
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


def waiting_rows(session: Session, source: Source, after: str | None, limit: Horizon) -> dict[str, Any]:
    """What this run leaves for a later one because it is newer than the horizon: ``waiting``
    (rows), ``waiting_for`` (what holds them back) and, when that is a fixed delay,
    ``waiting_until`` (when the newest of them may go). Empty when no row waits."""
    count, newest = session.execute(source.waiting(after, limit.until)).one()
    if not count:
        return {}
    found: dict[str, Any] = {"waiting": int(count), "waiting_for": limit.held_by or "stamped after this run began"}
    if newest is not None and limit.delay:
        found["waiting_until"] = _z(newest + limit.delay)
    return found


@dataclass
class Item:
    """One row read: its watermark key, source id, record ``_id``, and why it is not sent (or
    the index of its message in the unit)."""

    key: str
    line: int
    identity: str | None
    problem: str | None = None
    index: int = -1


@dataclass
class Unit:
    """Rows read in order, with the messages of those to send (one streaming request at most)."""

    items: list[Item] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    size: int = 0


class Export:
    """One stream's export in one run."""

    def __init__(
        self,
        context: RunContext,
        platform: Platform,
        stream: str,
        source: Source,
        target: Target,
        config: ExportConfig,
        after: str | None,
        cutoff: datetime,
        stats: Stats,
    ) -> None:
        self.context = context
        self.platform = platform
        self.stream = stream
        self.source = source
        self.target = target
        self.after = after
        self.cutoff = cutoff
        self.stats = stats
        self.tenant = tenant_key(context.settings.aep_tenant_id)
        self.namespace = config.identityNamespace
        self.validator: Validator = validator(stream, context.settings.aep_tenant_id)
        self.state_key = f"export:{stream}"

    # -- reading and mapping -------------------------------------------------------------------

    def rows(self) -> Iterator[Any]:
        """The stream's rows after the watermark, in order, read in chunks."""
        with self.context.sessions() as session:
            result = session.execute(
                self.source.query(self.after, self.cutoff), execution_options={"yield_per": READ_CHUNK}
            )
            for raw in result.partitions():
                yield from self.source.rows(session, raw)

    def mapped(self) -> Generator[tuple[Item, bytes | None]]:
        """Each row as an Item and its serialised record (None when it is not to be sent)."""
        source = self.source
        for row in self.rows():
            item = Item(source.key(row), int(row.id), None)
            try:
                record = source.record(row, self.tenant, self.namespace)
            except NoIdentity as exc:
                item.identity, item.problem = exc.record_id or None, str(exc)
                yield item, None
                continue
            item.identity = str(record["_id"])
            item.problem = self.validator.problem(record)
            yield item, None if item.problem else dumps(record)

    # -- committing ------------------------------------------------------------------------------

    def commit(self, rejects: list[tuple[Item, str]], key: str | None, marker: str | None = None) -> None:
        """In one transaction: record ``rejects``, move the watermark to ``key`` (None: leave it),
        and set the stream's batch marker to ``marker`` (when given)."""
        with self.context.sessions.begin() as session:
            for item, reason in rejects:
                self.context.reject(session, file=self.stream, line=item.line, identity=item.identity, reason=reason)
            self.context.flush_rejects(session)
            if key is not None:
                session.execute(update(SyncState).where(SyncState.stream == self.state_key).values(watermark=key))
            if marker is not None:
                state.set_value(session, f"batch:{self.stream}", marker)

    # -- streaming -------------------------------------------------------------------------------

    def units(self, envelopes: Envelopes) -> Generator[Unit]:
        unit = Unit()
        for item, record in self.mapped():
            if record is not None:
                message = envelopes.wrap(record)
                if not fits(0, 0, len(message)):
                    item.problem = f"record of {len(message)} bytes does not fit a {MAX_REQUEST_BYTES}-byte request"
                else:
                    if unit.messages and not fits(unit.size, len(unit.messages), len(message)):
                        yield unit
                        unit = Unit()
                    item.index = len(unit.messages)
                    unit.messages.append(message)
                    unit.size += len(message)
            unit.items.append(item)
            if len(unit.items) >= UNIT_ROWS:
                yield unit
                unit = Unit()
        if unit.items:
            yield unit

    def send_streaming(self) -> None:
        """Streaming ingestion: this thread prepares requests, a second one sends them in order."""
        envelopes = Envelopes(
            schema_id=self.target.schema_id, dataset_id=self.target.dataset_id, org_id=self.context.settings.aep_org_id
        )
        sender = StreamingSender(self.platform, self.context.settings.aep_inlet_id)
        work: queue.Queue[Unit | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        stop = threading.Event()
        crashed: list[BaseException] = []

        def send_all() -> None:
            try:
                while (unit := work.get()) is not None:
                    if not stop.is_set():
                        self.send(sender, unit, stop)
            except BaseException as exc:
                crashed.append(exc)
                stop.set()
                while work.get() is not None:  # let the producer finish
                    pass

        thread = threading.Thread(target=send_all, name=f"pushgate-export-{self.stream}", daemon=True)
        thread.start()
        units = self.units(envelopes)
        try:
            for unit in units:
                if stop.is_set():
                    break
                work.put(unit)
        finally:
            units.close()
            work.put(None)
            thread.join()
        if crashed:
            raise crashed[0]

    def send(self, sender: StreamingSender, unit: Unit, stop: threading.Event) -> None:
        """Send one unit, then record its rejects and move the watermark past what was taken."""
        try:
            delivery = sender.send(unit.messages) if unit.messages else Delivery()
        except ExternalError:  # the request refused as a whole: nothing of it was taken
            self.stats.unsent = len(unit.messages)
            raise
        self.stats.retried += delivery.retried
        rejects: list[tuple[Item, str]] = []
        key: str | None = None
        done = 0
        for item in unit.items:
            if item.problem is None and (item.index in delivery.setup or item.index in delivery.unresolved):
                self.stats.unsent = len(delivery.setup) + len(delivery.unresolved)
                self.stats.failure = not_taken(delivery, item.index)
                stop.set()
                break
            if item.problem is not None:
                rejects.append((item, item.problem))
            elif item.index in delivery.refused:
                rejects.append((item, f"refused by the Platform: {delivery.refused[item.index]}"))
            key = item.key
            done += 1
        self.commit(rejects, key)
        self.stats.rows += done
        self.stats.rejected += len(rejects)
        self.stats.sent += len(delivery.accepted)
        self.context.advance(done)

    # -- batch ingestion -------------------------------------------------------------------------

    def send_batches(self) -> None:
        """Batch ingestion: files of JSON lines, one batch per :data:`BATCH_RECORDS` records."""
        ingestion = BatchIngestion(self.platform)
        mapped = self.mapped()
        try:
            while self.next_batch(ingestion, mapped):
                pass
        finally:
            mapped.close()

    def next_batch(self, ingestion: BatchIngestion, mapped: Generator[tuple[Item, bytes | None]]) -> bool:
        """Ingest the next batch of rows; False when there were none left."""
        rejects: list[tuple[Item, str]] = []
        key: str | None = None
        read = 0
        with JsonLinesFiles() as files:
            for item, record in mapped:
                read += 1
                key = item.key
                if record is None:
                    rejects.append((item, item.problem or "not sent"))
                    continue
                files.write(record)
                if files.records >= BATCH_RECORDS:
                    break
            files.close()
            if read == 0:
                return False
            if files.records == 0:
                self.commit(rejects, key)
            else:
                self.ingest(ingestion, files, rejects, key)
        self.stats.rows += read
        self.stats.rejected += len(rejects)
        self.context.advance(read)
        return True

    def ingest(
        self, ingestion: BatchIngestion, files: JsonLinesFiles, rejects: list[tuple[Item, str]], key: str | None
    ) -> None:
        dataset = self.target.dataset_id
        batch_id = ingestion.create(dataset)
        for path in files.paths:
            ingestion.upload(batch_id, dataset, path)
        marker = f"batch:{self.stream}"
        self.commit(rejects, None, marker=f"{batch_id}|{key}")
        ingestion.complete(batch_id)
        status, problems = ingestion.wait(batch_id)
        if status != SUCCESS:
            with self.context.sessions.begin() as session:
                state.set_value(session, marker, None)
            raise PermanentError(f"batch {batch_id} {status}" + (f": {problems}" if problems else ""))
        with self.context.sessions.begin() as session:
            session.execute(update(SyncState).where(SyncState.stream == self.state_key).values(watermark=key))
            state.set_value(session, marker, None)
        self.stats.sent += files.records


def not_taken(delivery: Delivery, index: int) -> str:
    """The stream's failure when the message at ``index`` (the first record of the request the
    Platform did not take) was refused for the set-up or is still failing."""
    count = len(delivery.setup) + len(delivery.unresolved)
    if delivery.setup:
        reason = delivery.setup.get(index) or next(iter(delivery.setup.values()))
        return f"{count} records not sent, the Platform refused the stream's set-up, not the records: {reason}"
    return (
        f"{count} records not taken after {delivery.attempts} attempts "
        f"({delivery.unresolved[index]}); the next run sends them again"
    )


def resolve_batch(context: RunContext, platform: Platform, stream: str) -> str | None:
    """Settle a batch an earlier run completed without seeing its end; returns its id."""
    marker = f"batch:{stream}"
    with context.sessions() as session:
        value = state.get_value(session, marker)
    if not value:
        return None
    batch_id, _, key = value.partition("|")
    ingestion = BatchIngestion(platform)
    status, _problems = ingestion.status(batch_id)
    if status == "loading":  # never completed: drop it, its rows are sent again
        ingestion.abort(batch_id)
    elif status != SUCCESS and status not in FAILED_STATES:
        status, _problems = ingestion.wait(batch_id)
    with context.sessions.begin() as session:
        if status == SUCCESS:
            session.execute(update(SyncState).where(SyncState.stream == f"export:{stream}").values(watermark=key))
        state.set_value(session, marker, None)
    log.info("sync logs: %s: batch %s of an earlier run is %s", stream, batch_id, status)
    return batch_id
