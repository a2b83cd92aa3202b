"""The ``profiles`` job's settings, checked before a run touches the server.

- :class:`Folders`: ``PUSHGATE_SFTP_INBOX`` and the archive and rejects folders (by default
  ``archive`` and ``rejects`` inside the inbox), which must differ from the inbox (files left there
  would be read again);
- :class:`ProfileMapping`: ``PUSHGATE_SFTP_PROFILE_MAPPING`` (CSV column -> profile field,
  ``attributes.NAME`` or ``""`` for ignored), and how it maps a file's header
  (:meth:`ProfileMapping.resolve`; the rule is told in :mod:`sync.profiles.profile_rows`).

A bad setting raises :class:`~sync.runs.SyncError` (the run fails with its one line); a header the
mapping cannot take raises :class:`~sync.profiles.reader.ProfileFileProblem` (that file fails).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from core.config import Settings
from sync.profiles.reader import ProfileFileProblem
from sync.runs import SyncError

PROFILE_FIELDS = ("external_id", "email", "first_name", "last_name", "locale", "timezone", "push_consent")


@dataclass(frozen=True)
class Folders:
    inbox: str
    archive: str
    rejects: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Folders:
        inbox = posixpath.normpath(settings.sftp_inbox or ".")
        archive = posixpath.normpath(settings.sftp_archive or posixpath.join(inbox, "archive"))
        rejects = posixpath.normpath(settings.sftp_rejects or posixpath.join(inbox, "rejects"))
        if inbox in (archive, rejects):
            raise SyncError(
                "PUSHGATE_SFTP_ARCHIVE and PUSHGATE_SFTP_REJECTS must be other folders than PUSHGATE_SFTP_INBOX "
                "(files left there would be read again)"
            )
        return cls(inbox, archive, rejects)


@dataclass(frozen=True)
class ProfileMapping:
    """``PUSHGATE_SFTP_PROFILE_MAPPING``, checked: CSV column -> field, ``attributes.NAME`` or ``""``."""

    columns: dict[str, str]

    @classmethod
    def from_setting(cls, mapping: dict[str, str]) -> ProfileMapping:
        seen: dict[str, str] = {}
        for column, target in mapping.items():
            name = target.removeprefix("attributes.") if target.startswith("attributes.") else None
            if target and target not in PROFILE_FIELDS and not name:
                raise SyncError(
                    f"PUSHGATE_SFTP_PROFILE_MAPPING: column {column!r} maps to {target!r}, which is neither a "
                    f"profile field ({', '.join(PROFILE_FIELDS)}) nor attributes.NAME"
                )
            if target and target in seen:
                raise SyncError(
                    f"PUSHGATE_SFTP_PROFILE_MAPPING: columns {seen[target]!r} and {column!r} both map to {target!r}"
                )
            seen[target] = column
        return cls(dict(mapping))

    def resolve(self, header: Sequence[str]) -> list[tuple[str, str] | None]:
        """Per column: ``("field", name)``, ``("attribute", name)`` or None (ignored)."""
        taken = {target for target in self.columns.values() if target in PROFILE_FIELDS}
        targets: list[tuple[str, str] | None] = []
        for column in header:
            target = self.columns.get(column)
            if target is None and column in PROFILE_FIELDS:
                target = "" if column in taken else column
            if target is None:
                target = f"attributes.{column}"
            if not column or not target:
                targets.append(None)
            elif target.startswith("attributes."):
                targets.append(("attribute", target.removeprefix("attributes.")))
            else:
                targets.append(("field", target))
        given = [t for t in targets if t is not None]
        duplicated = next((t for i, t in enumerate(given) if t in given[:i]), None)
        if duplicated is not None:
            raise ProfileFileProblem(f"two columns give {duplicated[0]} {duplicated[1]!r}")
        if ("field", "external_id") not in given:
            source = next((c for c, t in self.columns.items() if t == "external_id"), "external_id")
            raise ProfileFileProblem(f"no external_id column (expected a column named {source!r})")
        return targets
