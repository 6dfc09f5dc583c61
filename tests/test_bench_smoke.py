"""The benchmarks still run: a tiny intake run prints its table (no timing is asserted)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def test_intake_bench_smoke_run_prints_its_table() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "intake.py"),
        "--smoke",
        cwd=ROOT,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = out.decode().splitlines()
    assert lines[0] == "| name | figure | unit | baseline | ratio | target |"
    assert any(line.startswith("| intake, SQLite") for line in lines)
    if os.environ.get("PRACTICE_BRIDGE_TEST_POSTGRES"):
        assert any(line.startswith("| intake, PostgreSQL") for line in lines)


def test_run_all_finds_the_intake_bench() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.run_all import benchmarks

    assert "bench.intake" in [module.__name__ for module in benchmarks()]
