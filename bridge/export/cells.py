"""Making any text safe for a spreadsheet cell: never a formula, always valid XML and UTF-8.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, or the
full-width forms of those signs) is what spreadsheet applications evaluate as a formula when a
file is opened or a cell re-entered; such a cell gets a leading apostrophe, the usual way to
say "this is text" (OWASP, CSV injection). Characters XML 1.0 cannot carry (most C0 controls,
lone surrogates, U+FFFE/U+FFFF) become U+FFFD, so a hostile body can neither break the file
nor fail the export. Everything else, non-Latin scripts and emoji included, is kept as it is.
"""

from __future__ import annotations

import re

#: Excel's limit for the text of one cell.
XLSX_CELL_LIMIT = 32_767

_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def neutralise(text: str) -> str:
    """The text as a cell that a spreadsheet shows and never evaluates."""
    if not text:
        return text
    if text[0] in _FORMULA_START or text.lstrip()[:1] in _FORMULA_START:
        return "'" + text
    return text


def clean(text: str) -> str:
    """Characters XML and UTF-8 cannot carry replaced with U+FFFD."""
    return _ILLEGAL.sub("\ufffd", text)


def cell_text(text: str) -> str:
    """Clean and neutralised: what every text cell of an export holds."""
    return neutralise(clean(text))


def fit_xlsx(text: str) -> str:
    """Within Excel's limit for one cell, saying how much was left out."""
    if len(text) <= XLSX_CELL_LIMIT:
        return text
    note = ""
    for _ in range(2):  # the note's own length decides how much is left out
        left_out = len(text) - (XLSX_CELL_LIMIT - len(note))
        note = f" [… {left_out} more characters: the CSV export has the whole text]"
    return text[: XLSX_CELL_LIMIT - len(note)] + note
