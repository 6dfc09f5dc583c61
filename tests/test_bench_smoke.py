"""The benchmarks still run: ``make bench BENCH_ARGS=--smoke`` runs every one of them at a tiny
size and prints the table (no timing is asserted: the figures of a smoke run mean nothing)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_all import benchmarks, name_of  # noqa: E402
from bench.table import SUMMARY_COLUMNS  # noqa: E402

EVERY_BENCH = {"api", "creation", "e2e", "export", "intake", "messenger", "module", "scale"}
# A row each bench always prints, by the start of its name.
ROW_OF = {
    "api": "API a client's message (Synapse, then the bridge), SQLite",
    "creation": "POST /chats/direct, one after another",
    "e2e": "end to end, client send -> staff /sync sees it",
    "export": "export 240, xlsx: peak memory",
    "intake": "intake, SQLite",
    # Also the row's start when chromium is missing and it measured nothing.
    "messenger": "messenger: Messages page opened -> chat list on screen",
    "module": "client message send through Synapse",
    "scale": "scale, SQLite: GET /chats first screen",
}
# And what else a bench's table must hold (anywhere in a row).
ALSO = {
    "creation": "POST /chats/direct/bulk",
    "e2e": "median, Synapse with an appservice that does nothing",
    "export": "export 240: spreadsheet writing side",
    "module": "median with the module",
}


def test_run_all_finds_every_bench() -> None:
    assert {name_of(module) for module in benchmarks()} == EVERY_BENCH


# Every bench starts its own Synapse and bridge; on a loaded 2-CPU machine that takes minutes.
@pytest.mark.timeout(900)
async def test_make_bench_smoke_runs_every_bench_and_writes_the_table(tmp_path: Path) -> None:
    output = tmp_path / "latest.md"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "run_all.py"),
        "--smoke",
        "--output",
        str(output),
        cwd=ROOT,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 840)
    assert proc.returncode == 0, err.decode()[-3000:]
    lines = out.decode().splitlines()
    assert lines[0] == "| " + " | ".join(SUMMARY_COLUMNS) + " |"
    rows = [line for line in lines[2:] if line.startswith("| ")]
    assert not [row for row in rows if "FAILED" in row]
    for bench, start in ROW_OF.items():
        assert any(row.startswith(f"| {start}") for row in rows), bench
    for bench, text in ALSO.items():
        assert any(text in row for row in rows), bench
    if os.environ.get("PRACTICE_BRIDGE_TEST_POSTGRES"):
        for bench in ("intake", "scale"):
            assert any(row.startswith(f"| {bench}, PostgreSQL") for row in rows), bench
        assert any(
            row.startswith(f"| {ROW_OF['e2e']}") and "Synapse and bridge on PostgreSQL" in row
            for row in rows
        )
    written = output.read_text()
    assert "\n".join(lines) in written
    for bench in EVERY_BENCH:
        assert f"`bench/{bench}.py`" in written
