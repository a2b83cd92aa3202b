"""The four export streams: how the store reads each one's rows (:mod:`store.queries.export`) and
the XDM record each row becomes (:mod:`sync.xdm.records`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from store.queries.export import READERS, StreamReader
from sync.xdm import records


class ExportTable(NamedTuple):
    """One export stream."""

    reader: StreamReader
    #: ``record(row, tenant_key, namespace)``: the row as the XDM record sent to the Platform.
    record: Callable[[Any, str, str], dict[str, Any]]


TABLES: dict[str, ExportTable] = {
    "broadlog": ExportTable(READERS["broadlog"], records.broadlog),
    "trackinglog": ExportTable(READERS["trackinglog"], records.trackinglog),
    "quarantine": ExportTable(READERS["quarantine"], records.quarantine),
    "preferences": ExportTable(READERS["preferences"], records.preferences),
}
