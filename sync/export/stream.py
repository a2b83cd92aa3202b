"""One stream's export in one run: its rows read, mapped, sent to the Platform and committed.

**Rows** after the stream's watermark and before the run's horizon are read in order
(:mod:`sync.export.tables`), mapped to XDM (:mod:`sync.xdm.records`) and validated against the
shipped schema (:mod:`sync.xdm`). A row that cannot be mapped (no identity) or is invalid is not
sent: it is recorded among the run's rejected rows (file = stream, line = source row id, identity =
its ``_id``, reason).

**Transport.** :meth:`Export.send_streaming`: streaming ingestion (:mod:`sync.platform.streaming`),
envelopes packed into requests under 1 MB, sent by a second thread while the next request is
prepared. :meth:`Export.send_batches`: batch ingestion (:mod:`sync.platform.batch`), JSON-lines
files of up to 256 MB, at most :data:`BATCH_RECORDS` records a batch, completed and polled until
the batch succeeds. (Which one a run uses: :func:`sync.export.job.export_stream`.)

**Watermark.** It moves only after the Platform took the records before it, in the same
transaction as those records' rejects (:meth:`Export.commit`): per streaming request, per
successful batch. A crash or an outage therefore loses nothing, and a new run starts after the last
request taken. The records that can be sent twice are those of the one request in flight at a
crash (or answered by a lost connection), with the same ``_id``s. A batch carries its own marker
(``batch:<stream>`` = batch id and the watermark it reaches), written before it is completed: the
next run looks the batch up (:func:`resolve_batch`) and moves the watermark when it succeeded, or
sends the rows again when it failed or was never completed (then aborted).

Streaming requests whose messages still fail after the sender's attempts stop the stream: the
watermark stays before the first record not taken (records after it in the same request that the
Platform did take are sent again by the next run, with the same ``_id``; :func:`not_taken` is the
stream's failure). A request or batch refused as a whole raises
:class:`~core.errors.ExternalError`, which the caller turns into the stream's failure.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import ExternalError, PermanentError
from store.queries import state
from sync.export.config import ExportConfig, Target
from sync.export.tables import ExportTable
from sync.platform.batch import FAILED_STATES, SUCCESS, BatchIngestion, JsonLinesFiles
from sync.platform.client import Platform
from sync.platform.streaming import MAX_REQUEST_BYTES, Envelopes, RequestOutcome, StreamingSender, dumps, fits
from sync.runs import RunContext
from sync.xdm import Validator, tenant_key, validator
from sync.xdm.records import NoIdentity

log = logging.getLogger("pushgate.sync.export")

#: Rows read from the database at a time.
READ_CHUNK = 1000
#: Prepared requests waiting for the sending thread.
QUEUE_DEPTH = 4
#: Rows (rejected ones included) in one unit of work at most.
UNIT_ROWS = 5000
#: Records of one ingestion batch at most.
BATCH_RECORDS = 500_000


@dataclass
class Stats:
    """What one stream's export did, for its outcome."""

    rows: int = 0
    sent: int = 0
    rejected: int = 0
    retried: int = 0
    unsent: int = 0
    failure: str | None = None


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
        table: ExportTable,
        target: Target,
        config: ExportConfig,
        after: str | None,
        cutoff: datetime,
        stats: Stats,
    ) -> None:
        self.context = context
        self.platform = platform
        self.stream = stream
        self.table = table
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
                self.table.reader.query(self.after, self.cutoff), execution_options={"yield_per": READ_CHUNK}
            )
            for raw in result.partitions():
                yield from self.table.reader.rows(session, raw)

    def mapped(self) -> Generator[tuple[Item, bytes | None]]:
        """Each row as an Item and its serialised record (None when it is not to be sent)."""
        table = self.table
        for row in self.rows():
            item = Item(table.reader.key(row), int(row.id), None)
            try:
                record = table.record(row, self.tenant, self.namespace)
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
                state.move(session, self.state_key, key)
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
            outcome = sender.send(unit.messages) if unit.messages else RequestOutcome()
        except ExternalError:  # the request refused as a whole: nothing of it was taken
            self.stats.unsent = len(unit.messages)
            raise
        self.stats.retried += outcome.retried
        rejects: list[tuple[Item, str]] = []
        key: str | None = None
        done = 0
        for item in unit.items:
            if item.problem is None and (item.index in outcome.setup or item.index in outcome.unresolved):
                self.stats.unsent = len(outcome.setup) + len(outcome.unresolved)
                self.stats.failure = not_taken(outcome, item.index)
                stop.set()
                break
            if item.problem is not None:
                rejects.append((item, item.problem))
            elif item.index in outcome.refused:
                rejects.append((item, f"refused by the Platform: {outcome.refused[item.index]}"))
            key = item.key
            done += 1
        self.commit(rejects, key)
        self.stats.rows += done
        self.stats.rejected += len(rejects)
        self.stats.sent += len(outcome.accepted)
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
            state.move(session, self.state_key, key)
            state.set_value(session, marker, None)
        self.stats.sent += files.records


def not_taken(outcome: RequestOutcome, index: int) -> str:
    """The stream's failure when the message at ``index`` (the first record of the request the
    Platform did not take) was refused for the set-up or is still failing."""
    count = len(outcome.setup) + len(outcome.unresolved)
    if outcome.setup:
        reason = outcome.setup.get(index) or next(iter(outcome.setup.values()))
        return f"{count} records not sent, the Platform refused the stream's set-up, not the records: {reason}"
    return (
        f"{count} records not taken after {outcome.attempts} attempts "
        f"({outcome.unresolved[index]}); the next run sends them again"
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
            state.move(session, f"export:{stream}", key)
        state.set_value(session, marker, None)
    log.info("sync logs: %s: batch %s of an earlier run is %s", stream, batch_id, status)
    return batch_id
