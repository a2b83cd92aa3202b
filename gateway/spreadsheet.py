"""CSV answers a person opens in a spreadsheet.

Cells come from uploaded files and SDK calls (file names, identities, reasons quoting them): a cell
beginning with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before one) is run as a
formula by Excel, LibreOffice and Google Sheets, which can read other cells out or start programs.
:func:`cell` prefixes such a value with ``'``, the spreadsheets' own "this is text" mark, which they
show without it. Numbers written by pushgate itself (line numbers) are not text and pass as they are.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """``value`` as it may go into a CSV cell."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
