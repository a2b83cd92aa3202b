"""Log export: broadLog, trackingLog, quarantine and preferences out to the Experience Platform.

:func:`run` is the ``logs`` sync job (see :mod:`sync.export.job`). A stream is claimed by
:mod:`sync.export.guardrail` (at most every 4 hours), checked for what it needs by
:mod:`sync.export.config` (the ``export`` section of the sync configuration, the AEP settings, the
provisioned dataset and schema), its rows are read by :mod:`sync.export.tables` and mapped, sent
and committed by :mod:`sync.export.stream`. After the streams, :mod:`sync.export.privacy` sends
the Privacy Service a delete job for each person erased since. The one package that talks to the
Platform is :mod:`sync.platform`.
"""

from sync.export.job import run

__all__ = ["run"]
