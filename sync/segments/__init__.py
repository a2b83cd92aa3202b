"""Segment import: the exports Platform's Azure Blob destination writes become audiences.

:func:`run` is the ``segments`` sync job (see :mod:`sync.segments.job`) and :func:`plan` decides
which blobs it takes (:mod:`sync.segments.planning`); the file names are read by
:mod:`sync.segments.names`, the rows by :mod:`sync.segments.reader` (CSV) and
:mod:`sync.segments.jsonl` (JSON lines) into what :mod:`sync.segments.rows` defines, and applied
through :mod:`store.queries.audience_staging`. The one module that talks to Azure is
:mod:`sync.sources.blob`.
"""

from sync.segments.job import run
from sync.segments.planning import plan

__all__ = ["plan", "run"]
