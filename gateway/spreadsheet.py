"""CSV answers a person opens in a spreadsheet.

Cells come from uploaded files and SDK calls (file names, identities, reasons quoting them): a cell
beginning with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before one) is run as a
formula by Excel, LibreOffice and Google Sheets, which can read other cells out or start programs.
:func:`cell` prefixes such a value with ``'``, the spreadsheets' own "this is text" mark, which they
show without it. Numbers written by pushgate itself (line numbers) are not text and pass as they are.

:func:`rejects_csv` is a sync run's rejected rows as that CSV, and :func:`download` sends such
lines as a file: the API (``GET /api/v1/sync/runs/{id}/rejects``) and the console's run page
answer with the same bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

from flask import Response, stream_with_context

from sync import runs

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """``value`` as it may go into a CSV cell."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def rejects_csv(sessions: sessionmaker[Session], run_id: int) -> Iterator[str]:
    """Run ``run_id``'s rejected rows as CSV text (``file,line,identity,reason``), in chunks of
    1000 rows, read in a session of its own (the response streams after the view has returned)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "line", "identity", "reason"])
    with sessions() as session:
        for count, reject in enumerate(runs.iter_rejects(session, run_id), 1):
            writer.writerow([cell(reject.file), reject.line, cell(reject.identity or ""), cell(reject.reason)])
            if count % 1000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def download(lines: Iterator[str], filename: str) -> Response:
    """A streamed ``text/csv`` attachment named ``filename``."""
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
