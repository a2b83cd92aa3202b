"""Segment import: the exports Platform's Azure Blob destination writes become audiences.

:func:`run` is the ``segments`` sync job (see :mod:`sync.segments.job`); the file names are read by
:mod:`sync.segments.names`, the rows by :mod:`sync.segments.reader`, and applied through
:mod:`store.queries.audience_staging`. The one module that talks to Azure is :mod:`sync.sources.blob`.
"""

from sync.segments.job import plan, run

__all__ = ["plan", "run"]
