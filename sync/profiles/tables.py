"""Personalisation files: lookup tables that templates read (``tables.offers[key].title``).

``data_offers.csv`` feeds table ``offers`` (the table name is what follows the pattern's fixed
prefix, up to ``.csv``; letters, digits and ``_``, starting with a letter: :func:`table_name`).
**The first column is the key**; the other columns are the row's fields. **A file replaces the
whole table**: rows absent from the file are gone once it is applied. A key given twice: the later
row wins.

:class:`DataFile` is the :class:`~sync.profiles.reader.Kind` of these files: it checks rows for
:func:`~sync.profiles.reader.stage` and writes the table through :mod:`domain.personalisation` in
the file's transaction; it commits nothing itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic_core import PydanticCustomError
from sqlalchemy.orm import Session

from domain import personalisation
from domain.fields import check_json, storable
from sync.profiles.reader import Applied, ProfileFileProblem, strip_extension

FIELDS_MAX_BYTES = 16 * 1024
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def table_name(name: str, pattern: str) -> str:
    """The table a data file feeds: what follows the pattern's fixed prefix, up to the extension."""
    stem = strip_extension(name)
    prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    if prefix and stem.startswith(prefix):
        stem = stem[len(prefix) :]
    return stem


class DataFile:
    """Personalisation rows: the first column is the key, the other columns the fields."""

    job = "data"

    def __init__(self, name: str, pattern: str) -> None:
        self.table = table_name(name, pattern)
        self.header: list[str] = []

    def read_header(self, header: list[str]) -> None:
        if not _TABLE_NAME.match(self.table):
            raise ProfileFileProblem(
                f"table name {self.table!r} (from the file name) must be 1 to 64 letters, digits or _, starting "
                "with a letter"
            )
        if not header or not header[0]:
            raise ProfileFileProblem("no key column: the first column of a data file is the key and needs a name")
        hidden = next((name for name in header if name.startswith("_")), None)
        if hidden is not None:
            raise ProfileFileProblem(f"column {hidden!r}: templates cannot read names starting with _")
        self.header = header

    def check(self, cells: list[str]) -> tuple[Any, str | None, str | None, bool]:
        key = cells[0].strip()
        if not key:
            return None, None, f"no key ({self.header[0]} is empty)", True
        if len(key) > personalisation.KEY_MAX:
            return None, key[:255], f"{self.header[0]}: longer than {personalisation.KEY_MAX} characters", False
        fields = {name: cell for name, cell in zip(self.header[1:], cells[1:], strict=True) if name and cell != ""}
        try:
            storable(key)
            check_json(fields, max_bytes=FIELDS_MAX_BYTES, what="the row")
        except PydanticCustomError as exc:
            return None, key, exc.message(), False
        return fields, key, None, False

    def apply(self, session: Session, chunks: Iterator[list[tuple[int, list[str], Any]]]) -> Applied:
        columns = [name for name in self.header[1:] if name]
        table_id = personalisation.replace_table(session, self.table, self.header[0], columns)
        result = Applied(details={"table": self.table})
        for chunk in chunks:
            personalisation.put_rows(session, table_id, [(cells[0].strip(), value) for _line, cells, value in chunk])
            result.applied += len(chunk)
        return result
