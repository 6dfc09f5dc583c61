"""Run every benchmark in bench/ and print one markdown table (``make bench``).

A benchmark is a module here with ``async def run(args) -> list[dict]`` returning rows with
name, figure, unit, baseline, ratio and target (and ``met`` if the target text does not say);
it may add its own options with ``add_arguments(parser)``. ``--smoke`` asks each for a tiny run
(CI): the smoke runs go side by side, since their figures mean nothing; a full run takes the
benchmarks one at a time, so that none measures while another loads the machine.

The table goes to stdout and to ``bench/results/latest.md`` with the notes: the machine, how
long each benchmark took, and what each measured (the first paragraph of its docstring). A
benchmark that fails does not stop the others: its row says so and the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.table import summary_table, verdict  # noqa: E402
from tests.postgres import PG_ENV  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "latest.md"


def name_of(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[-1]


def benchmarks() -> list[ModuleType]:
    found = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        if path.stem.startswith("_") or path.stem == "run_all":
            continue
        module = importlib.import_module(f"bench.{path.stem}")
        if callable(getattr(module, "run", None)):
            found.append(module)
    return found


async def _one(module: ModuleType, args: argparse.Namespace) -> tuple[list[dict[str, Any]], float]:
    print(f"running bench/{name_of(module)}.py ...", file=sys.stderr)
    start = time.monotonic()
    try:
        rows = list(await module.run(args))
    except Exception as e:
        traceback.print_exc()
        rows = [
            {
                "name": f"{name_of(module)}: FAILED ({type(e).__name__}: {e})"[:300],
                "met": False,
            }
        ]
    seconds = time.monotonic() - start
    print(f"bench/{name_of(module)}.py took {seconds:,.0f} s", file=sys.stderr)
    return rows, seconds


async def run_all(
    modules: list[ModuleType], args: argparse.Namespace
) -> list[tuple[ModuleType, list[dict[str, Any]], float]]:
    if args.smoke:
        done = await asyncio.gather(*(_one(m, args) for m in modules))
    else:
        done = [await _one(m, args) for m in modules]
    return [(m, rows, seconds) for m, (rows, seconds) in zip(modules, done, strict=True)]


def notes(
    results: list[tuple[ModuleType, list[dict[str, Any]], float]], args: argparse.Namespace
) -> str:
    dsn = args.postgres or os.environ.get(PG_ENV)
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        + ("smoke sizes (figures mean nothing)" if args.smoke else "full sizes")
        + ("; PostgreSQL legs included" if dsn else f"; no PostgreSQL legs (set {PG_ENV})"),
        "",
    ]
    for module, rows, seconds in results:
        first = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
        missed = 0 if args.smoke else sum(1 for row in rows if verdict(row)[0] is False)
        lines.append(
            f"- `bench/{name_of(module)}.py` ({seconds:,.0f} s"
            + (f", {missed} target(s) missed" if missed else "")
            + f"): {first}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0], conflict_handler="resolve"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run of each, for CI")
    parser.add_argument("--postgres", help=f"a PostgreSQL DSN (default: ${PG_ENV})")
    parser.add_argument("--only", nargs="*", help="module names to run (default: all)")
    parser.add_argument("--output", default=str(RESULTS), help="also write the table here")
    modules = benchmarks()
    for module in modules:
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    args = parser.parse_args()
    if args.only:
        unknown = set(args.only) - {name_of(m) for m in modules}
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
        modules = [m for m in modules if name_of(m) in args.only]
    results = asyncio.run(run_all(modules, args))
    # A smoke run's figures mean nothing, and neither would its verdicts.
    table = summary_table([row for _, rows, _ in results for row in rows], not args.smoke)
    print(table)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(f"# make bench\n\n{table}\n\n{notes(results, args)}\n")
    print(f"\n(written to {output})", file=sys.stderr)
    failed = any(
        row.get("met") is False and "FAILED" in str(row.get("name"))
        for _, rows, _ in results
        for row in rows
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
