"""Benchmarks: each module exposes ``async def run(args) -> list[dict]``; run_all.py runs them."""
