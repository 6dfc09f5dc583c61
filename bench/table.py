"""The tables benchmarks print: what was measured, against what, as a ratio.

``markdown_table`` is each bench's own table (``python bench/<name>.py``); ``summary_table`` is
the one ``make bench`` prints for all of them, with the unit beside each figure and whether the
target was met in a column of its own. A row says so with ``met`` (True, False, or None for no
target), or, as the earlier benches do, with "(met)" or "(MISSED)" in its target text.
"""

from __future__ import annotations

import re
from typing import Any

COLUMNS = ("name", "figure", "unit", "baseline", "ratio", "target")
SUMMARY_COLUMNS = ("benchmark", "figure", "baseline", "ratio", "target", "met?")
_VERDICT = re.compile(r"\s*\((met|MISSED)\)")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value).replace("|", "\\|")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def verdict(row: dict[str, Any]) -> tuple[bool | None, str]:
    """Whether the row's target was met (None: it has none), and its target text without the
    verdict written into it."""
    target = "" if row.get("target") is None else str(row["target"])
    found = _VERDICT.search(target)
    met = row.get("met")
    if met is None and found:
        met = found.group(1) == "met"
    return met, _VERDICT.sub("", target).strip()


def _with_unit(value: Any, unit: Any) -> str:
    text = _cell(value)
    return f"{text} {unit}" if text and unit else text


def summary_table(rows: list[dict[str, Any]], verdicts: bool = True) -> str:
    """``verdicts=False`` leaves "met?" empty (a smoke run), except for a failed benchmark."""
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    for row in rows:
        met, target = verdict(row)
        if not verdicts and "FAILED" not in str(row.get("name")):
            met = None
        cells = [
            _cell(row.get("name")),
            _with_unit(row.get("figure"), row.get("unit")),
            _with_unit(row.get("baseline"), row.get("unit")),
            _cell(row.get("ratio")),
            _cell(target),
            {True: "yes", False: "**no**", None: ""}[met],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
