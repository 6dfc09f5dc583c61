"""Run every benchmark in bench/ and print one markdown table (``make bench``).

A benchmark is a module here with ``async def run(args) -> list[dict]`` returning rows with
name, figure, unit, baseline, ratio and target; it may add its own options with
``add_arguments(parser)``. ``--smoke`` asks each for a tiny run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.table import markdown_table  # noqa: E402


def benchmarks() -> list[ModuleType]:
    found = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        if path.stem.startswith("_") or path.stem == "run_all":
            continue
        module = importlib.import_module(f"bench.{path.stem}")
        if callable(getattr(module, "run", None)):
            found.append(module)
    return found


async def run_all(modules: list[ModuleType], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for module in modules:
        print(f"running bench/{module.__name__.rsplit('.', 1)[-1]}.py ...", file=sys.stderr)
        rows.extend(await module.run(args))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], conflict_handler="resolve"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run of each, for CI")
    parser.add_argument("--postgres", help="a PostgreSQL DSN for benchmarks that use one")
    parser.add_argument("--only", nargs="*", help="module names to run (default: all)")
    modules = benchmarks()
    for module in modules:
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    args = parser.parse_args()
    if args.only:
        modules = [m for m in modules if m.__name__.rsplit(".", 1)[-1] in args.only]
    print(markdown_table(asyncio.run(run_all(modules, args))))


if __name__ == "__main__":
    main()
