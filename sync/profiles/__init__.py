"""Profile import: the CSV files Campaign's workflows drop into the sFTP inbox.

Campaign is the source of truth for profiles; its workflows drop CSV files (optionally gzipped,
``.csv.gz``) into ``PUSHGATE_SFTP_INBOX``. :func:`run` is the ``profiles`` sync job (see
:mod:`sync.profiles.job`: which files, the ledger, applied exactly once, archived); its settings
are checked by :mod:`sync.profiles.settings`, a file is read and checked by
:mod:`sync.profiles.reader`, and its rows are written by :mod:`sync.profiles.profile_rows`
(profile files) or :mod:`sync.profiles.tables` (personalisation files: lookup tables). The one
module that talks to the server is :mod:`sync.sources.sftp`.
"""

from sync.profiles.job import run

__all__ = ["run"]
