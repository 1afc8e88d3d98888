"""CSV cells a spreadsheet opens as data, never as a formula (OWASP "CSV injection").

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula by
Excel, LibreOffice and Google Sheets (`=HYPERLINK(...)`, `=cmd|' /C calc'!A0`). Such a cell
is written with a leading single quote, which spreadsheets show as text. A cell that
already starts with a quote gets one more, so `restore` gives back exactly what was stored.
Every CSV the server writes passes its text cells through `neutralise`.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def neutralise(text: str) -> str:
    """The cell to write for `text`."""
    if text.startswith(FORMULA_STARTS) or text.startswith(QUOTE):
        return QUOTE + text
    return text


def restore(cell: str) -> str:
    """The text a neutralised cell was written for."""
    return cell.removeprefix(QUOTE)
