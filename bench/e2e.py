"""End to end: from a client's send to the staff member's ``/sync`` seeing it, with the bridge and
module against plain Synapse.

What is measured: a client sends a text message (``PUT /rooms/{roomId}/send``) into a chat
with a staff member, whose ``/sync`` long-poll (a ``since`` token, 30 s timeout, a frontend's
filter) is already waiting in Synapse. The clock starts when the send is issued and stops when
a ``/sync`` answer holding that message (recognised by a nonce in its body) has been read by
the staff member; if a sync answer comes back with something else first, the staff member
polls again, as a client would, and that time counts.

- **with bridge and module** (the product): Synapse with our registration and modules; the
  bridge running as its own process (``practice-bridge run``) and receiving every
  transaction, so the pipeline's effects (post-hoc rules, chat activity, unread index, outbox)
  happen while the staff member waits. The practice, its practitioner and client are put
  through the API, the sessions are minted by the bridge, the chat is made by
  ``POST /chats/direct``, and the module reads the chat's policy on every client message.
- **plain Synapse**: the same homeserver config without the appservice and modules; two plain
  users (shared-secret registration, password login) in a private room the staff member made.
- **Synapse with an appservice that does nothing** (:mod:`bench.null_appservice`): the same
  homeserver config with that appservice's registration and no modules; its two users are
  the appservice's (registered and logged in with its token, a device each, as the bridge
  mints sessions) in a private room the staff member made; it answers every transaction at
  once. Synapse's own work for any appservice (reading the new events, recording,
  pushing and completing a transaction, in the process serving the clients) is the floor under
  the product's figure; the product against this side is what its module and bridge add.

The three Synapses run side by side; the sends go round them (which goes first turns), with a
short pause after each so one side's after-work does not fall on another's clock. Figures:
median and p99 with the product; ratios against plain Synapse from this run (the target), and,
reported, the floor against plain Synapse and the product against the floor.

Twice, in alternating blocks of sends: with every process free to run on every CPU (**shared
CPUs**, as on a small test machine), and with the Synapses pinned to the first CPU and the
bridge (and the appservice that does nothing) to the second (**split CPUs**, as in production,
where the bridge does not take Synapse's cores; every thread of each process, as ``taskset -a``
does). Target: at most 5% more at the median on split CPUs; the shared figure is reported
beside it. On a machine with one CPU only the shared figures are made.

All of it on SQLite (every Synapse and the bridge), then, with ``--postgres`` or
``$PRACTICE_BRIDGE_TEST_POSTGRES``, again on PostgreSQL, as in production: a database of its
own for each Synapse (the pool of Synapse's sample config) and a schema for the bridge, all
dropped afterwards. PostgreSQL's own processes are not pinned.

    python bench/e2e.py [--sends N] [--warmup-sends N] [--postgres DSN] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench._e2e_sides import (  # noqa: E402
    Side,
    floor_side,
    plain_side,
    product_side,
    sample,
    start_floor,
    sync,
)
from bench._e2e_storage import Storage, storage  # noqa: E402
from bench._product import (  # noqa: E402
    Homeserver,
    product_config,
    start_bridge,
    start_homeserver,
    stop_process,
)
from bench.table import latency_rows, script_main, size  # noqa: E402
from registration.processes import ProcessGroup  # noqa: E402
from tests.postgres import PG_ENV  # noqa: E402

TARGET_RATIO = 1.05
PRODUCT = "with bridge and module"
PLAIN = "plain Synapse"
FLOOR = "Synapse with an appservice that does nothing"
BLOCK = 50  # sends per side before switching between shared and split CPUs
SETTLE_SECONDS = 0.06  # after each sample: what follows a send finishes off the clock


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sends", type=int, default=600, help="timed sends per side")
    parser.add_argument("--warmup-sends", type=int, default=50, help="untimed sends per side")


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of a process onto these CPUs (``taskset -a -p``)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, FileNotFoundError):
            pass  # a thread that has just ended


def place(split: bool, synapses: list[int], appservices: list[int]) -> None:
    """Split: Synapse on the first CPU, the appservices (the bridge) on the second; shared: all
    on all."""
    every = set(range(os.cpu_count() or 1))
    for pid in synapses:
        pin(pid, {0} if split else every)
    for pid in appservices:
        pin(pid, {1} if split else every)


async def measure(messages: int, warmup: int, dsn: str | None) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        async with storage(tmp / "product", dsn) as store:
            timings, modes = await _timed(tmp, store, messages, warmup)
    return _rows(timings, modes, messages, "PostgreSQL" if dsn else "")


async def _timed(
    tmp: Path, store: Storage, messages: int, warmup: int
) -> tuple[dict[tuple[str, str], list[float]], tuple[str, ...]]:
    """The three sides started, set up and timed in turns; every process stopped after."""
    started: list[Homeserver] = []
    bridge: subprocess.Popen[bytes] | None = None
    null: ProcessGroup | None = None
    try:
        product_root, plain_root = tmp / "product", tmp / "plain"
        config = product_config(
            product_root, **store.bridge(), **{"provisioning.token_cache_seconds": 60}
        )
        hs = start_homeserver(
            product_root, config, product=True, settings=store.synapse("product")
        )
        started.append(hs)
        product = Side(PRODUCT, hs)
        plain_hs = start_homeserver(
            plain_root, product_config(plain_root), product=False, settings=store.synapse("plain")
        )
        started.append(plain_hs)
        plain = Side(PLAIN, plain_hs)
        floor_hs, null, floor_token = start_floor(tmp / "floor", store.synapse("floor"))
        started.append(floor_hs)
        floor = Side(FLOOR, floor_hs)
        bridge = await start_bridge(config, product_root / "bridge.log")
        can_split = (os.cpu_count() or 1) >= 2
        modes = ("shared", "split") if can_split else ("shared",)
        sides = (product, floor, plain)
        timings: dict[tuple[str, str], list[float]] = {
            (m, side.name): [] for m in modes for side in sides
        }
        synapses = [pid for h in started for pid in h.synapse.pids]
        block = min(BLOCK, messages)
        async with aiohttp.ClientSession() as session:
            await product_side(session, product, config)
            await plain_side(session, plain)
            await floor_side(session, floor, floor_token)
            for side in sides:
                await sync(session, side, 0)
            for i in range(warmup + len(modes) * messages):
                mode = modes[(max(i - warmup, 0) // block) % len(modes)]
                if i == 0 or i >= warmup and (i - warmup) % block == 0:
                    place(mode == "split", synapses, [bridge.pid, *null.pids])
                for side in sides[i % 3 :] + sides[: i % 3]:
                    elapsed = await sample(session, side)
                    if i >= warmup:
                        timings[(mode, side.name)].append(elapsed)
                    await asyncio.sleep(SETTLE_SECONDS)
            place(False, synapses, [bridge.pid, *null.pids])
        if bridge.poll() is not None:
            raise RuntimeError("the bridge stopped during the run")
        await store.wait_processed(product.room, warmup + len(modes) * messages)
    finally:
        if bridge is not None:
            stop_process(bridge)
        if null is not None:
            null.stop()
        for started_hs in started:
            started_hs.stop()
    return timings, modes


# What each run compares: (ours, against, how the row names ours).
COMPARED = (
    (PRODUCT, PLAIN, f", {PRODUCT}"),
    (FLOOR, PLAIN, f", {FLOOR}"),
    (PRODUCT, FLOOR, f", {PRODUCT}, against the appservice that does nothing"),
)


def _rows(
    timings: dict[tuple[str, str], list[float]],
    modes: tuple[str, ...],
    messages: int,
    database: str,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    on = f", Synapse and bridge on {database}" if database else ""
    for mode in modes:
        where = "Synapse on CPU 0, bridge on CPU 1" if mode == "split" else "shared CPUs"
        what = f"end to end, client send -> staff /sync sees it ({messages} sends, {where}{on})"
        target, *reported = (
            latency_rows(
                what,
                timings[(mode, ours)],
                timings[(mode, against)],
                side=side,
                against=against,
                target=TARGET_RATIO,
            )
            for ours, against, side in COMPARED
        )
        if mode == "shared" and len(modes) > 1:
            # The target is the split figure's; the shared one is reported beside it.
            target[0]["target"] = "reported (the split-CPU median is the target)"
        for pair in reported:
            pair[0]["target"] = "reported (Synapse's appservice work, and what the product adds)"
        rows += target + [row for pair in reported for row in pair]
    return rows


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    messages, warmup = size(args, "sends", 600, 10), size(args, "warmup_sends", 50, 3)
    rows = await measure(messages, warmup, None)
    dsn = getattr(args, "postgres", None) or os.environ.get(PG_ENV)
    if dsn:
        rows += await measure(messages, warmup, dsn)
    return rows


def main() -> None:
    script_main(__doc__, add_arguments, run, postgres_env=PG_ENV)


if __name__ == "__main__":
    main()
