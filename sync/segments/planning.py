"""Which listed blobs a ``segments`` run takes: :func:`plan`, a pure function of the listing and the
ledger.

It sets aside what is not an export, what the ledger already holds (same name and ETag) and exports
that cannot be taken yet: a missing part (neither listed nor applied before), or a part that failed
or was blocked (re-upload it, or run with ``retry_failed``, which takes it again). The exports left
are ready, oldest first, each with all of its new parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sync.runs import FileOutcome
from sync.segments.names import Export, ExportFile, group_exports, parse_name
from sync.sources.blob import BlobInfo


@dataclass
class Pending:
    """A listed blob the run may take."""

    file: ExportFile
    etag: str
    retry: bool = False  # replaces a failed or blocked ledger row


@dataclass
class Plan:
    """What a run does with the listed blobs."""

    ready: list[tuple[Export, list[Pending]]] = field(default_factory=list)
    taken: int = 0
    waiting: list[FileOutcome] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def plan(blobs: Sequence[BlobInfo], ledger: dict[tuple[str, str], str], *, retry_failed: bool) -> Plan:
    """Sort the listed blobs against the ledger (``(name, etag) -> status``)."""
    result = Plan()
    applied_names = {name for (name, _), status in ledger.items() if status == "applied"}
    files: list[ExportFile] = []
    etags: dict[str, str] = {}
    for blob in blobs:
        parsed = parse_name(blob.name)
        if parsed is None:
            result.ignored.append(blob.name)
            continue
        files.append(parsed)
        etags[blob.name] = blob.etag
    for export in group_exports(files):
        pending: list[Pending] = []
        held: list[tuple[str, str]] = []
        for file in export.files:
            status = ledger.get((file.name, etags[file.name]))
            if status == "applied":
                result.taken += 1
            elif status is not None and not retry_failed:
                result.taken += 1
                held.append((file.name, status))
            else:
                pending.append(Pending(file, etags[file.name], retry=status is not None))
        if not pending:
            continue
        listed = {file.part for file in export.files}
        missing = [
            part
            for part in range(1, max(listed) + 1)
            if part not in listed and export.first.part_name(part) not in applied_names
        ]
        if missing:
            reason = f"waiting for part {', '.join(map(str, missing))} of {export.key}"
        elif held:
            name, status = held[0]
            reason = f"not applied while {name} is {status}: replace that file, or retry failed files"
        else:
            result.ready.append((export, pending))
            continue
        result.waiting.extend(FileOutcome(p.file.name, "skipped", reason=reason) for p in pending)
    return result
