"""The tables benchmarks print: what was measured, against what, as a ratio.

``markdown_table`` is each bench's own table (``python bench/<name>.py``, through
``script_main``); ``latency_rows`` turns paired latencies into its median and p99 rows;
``summary_table`` is
the one ``make bench`` prints for all of them, with the unit beside each figure and whether the
target was met in a column of its own. A row says so with ``met`` (True, False, or None for no
target), or, as the earlier benches do, with "(met)" or "(MISSED)" in its target text.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
from collections.abc import Callable, Coroutine
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


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def latency_rows(
    what: str, ours: list[float], theirs: list[float], *, side: str, against: str, target: float
) -> list[dict[str, Any]]:
    """Two rows for latencies in seconds, ours against a baseline's from the same run: the
    median, whose ratio has the target, and the p99, reported."""
    median, base_median = statistics.median(ours), statistics.median(theirs)
    ratio = median / base_median
    met = "met" if ratio <= target else "MISSED"
    return [
        {
            "name": f"{what}: median{side}",
            "figure": median * 1000,
            "unit": "ms",
            "baseline": base_median * 1000,
            "ratio": ratio,
            "target": f"<= {target} of {against} ({met})",
        },
        {
            "name": f"{what}: p99{side}",
            "figure": p99(ours) * 1000,
            "unit": "ms",
            "baseline": p99(theirs) * 1000,
            "ratio": p99(ours) / p99(theirs),
            "target": "reported (the median is the target)",
        },
    ]


def script_main(
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, list[dict[str, Any]]]],
    *,
    postgres_env: str | None = None,
) -> None:
    """A bench run as a script: its own options, ``--smoke`` (and ``--postgres`` where the
    database matters), then its table on stdout."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    add_arguments(parser)
    if postgres_env:
        parser.add_argument("--postgres", help=f"a PostgreSQL DSN (default: ${postgres_env})")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, for CI")
    print(markdown_table(asyncio.run(run(parser.parse_args()))))


def size(args: argparse.Namespace, option: str, full: int, smoke: int) -> int:
    """An option's figure as given on the command line (``full`` when the bench runs from
    run_all without it), or ``smoke`` for a ``--smoke`` run."""
    return smoke if getattr(args, "smoke", False) else int(getattr(args, option, full))


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
