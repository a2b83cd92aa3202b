"""The names Platform's Azure Blob destination gives its files, and the exports they make up.

Platform names an export file ``{destination}_{segmentId}_{YYYYMMdd_HHmmss}.csv`` by default
(``.json`` for JSON; ``.gz`` added when compressed) and splits an export at 5 million rows into
``..._2.csv``, ``..._3.csv`` and so on. The destination name may itself contain underscores, so a
name is read from its end. The parts of one export share its **key**: the blob name without the
part suffix. A name that does not follow the pattern (a manifest file, a custom name) is not an
export and :func:`parse_name` returns ``None`` for it.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

#: ``audience_member.last_export`` holds a key of at most this many characters.
KEY_MAX = 255

_EXPORT = re.compile(
    r"(?P<destination>.+)_(?P<segment>[^_]+)_(?P<stamp>\d{8}_\d{6})(?:_(?P<part>[1-9]\d{0,5}))?"
    r"(?P<ext>\.csv|\.csv\.gz|\.gz|\.json|\.jsonl|\.json\.gz|\.jsonl\.gz)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ExportFile:
    """One blob of a segment export."""

    name: str  # the blob name, folders included
    folder: str  # "" or the folders, ending with "/"
    destination: str
    segment_id: str
    exported_at: datetime
    part: int  # 1 for the file without a suffix
    format: str  # csv | json
    compressed: bool
    extension: str

    @property
    def key(self) -> str:
        """The export this file is a part of: its name without the part suffix (shortened with a
        hash past :data:`KEY_MAX` characters)."""
        stamp = self.exported_at.strftime("%Y%m%d_%H%M%S")
        key = f"{self.folder}{self.destination}_{self.segment_id}_{stamp}{self.extension}"
        if len(key) <= KEY_MAX:
            return key
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        return f"{key[: KEY_MAX - 21]}#{digest}"

    def part_name(self, part: int) -> str:
        """The blob name of another part of the same export."""
        stamp = self.exported_at.strftime("%Y%m%d_%H%M%S")
        suffix = "" if part == 1 else f"_{part}"
        return f"{self.folder}{self.destination}_{self.segment_id}_{stamp}{suffix}{self.extension}"


def parse_name(name: str) -> ExportFile | None:
    """The export file ``name`` is, or ``None`` when it is not named like one."""
    folder, _, base = name.rpartition("/")
    match = _EXPORT.fullmatch(base)
    if match is None:
        return None
    try:
        exported_at = datetime.strptime(match["stamp"], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    extension = match["ext"]
    lowered = extension.lower()
    return ExportFile(
        name=name,
        folder=f"{folder}/" if folder else "",
        destination=match["destination"],
        segment_id=match["segment"],
        exported_at=exported_at,
        part=int(match["part"] or 1),
        format="json" if lowered.startswith(".json") else "csv",
        compressed=lowered.endswith(".gz"),
        extension=extension,
    )


@dataclass
class Export:
    """The parts of one export that a run takes together, in part order."""

    key: str
    files: list[ExportFile]

    @property
    def first(self) -> ExportFile:
        return self.files[0]


def group_exports(files: Iterable[ExportFile]) -> list[Export]:
    """Files grouped by export key; exports oldest first, parts in order."""
    groups: dict[str, list[ExportFile]] = defaultdict(list)
    for file in files:
        groups[file.key].append(file)
    exports = [Export(key, sorted(parts, key=lambda f: f.part)) for key, parts in groups.items()]
    return sorted(exports, key=lambda e: (e.first.exported_at, e.key))
