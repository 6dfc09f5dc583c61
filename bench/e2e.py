"""End to end: from a client's send to the staff member's ``/sync`` seeing it, with the bridge and
module against plain Synapse.

What is measured: a client sends a text message (``PUT /rooms/{roomId}/send``) into a chat
with a staff member, whose ``/sync`` long-poll (a ``since`` token, 30 s timeout, a frontend's
filter) is already waiting in Synapse. The clock starts when the send is issued and stops when
a ``/sync`` answer holding that message (recognised by a nonce in its body) has been read by
the staff member; if a sync answer comes back with something else first, the staff member
polls again, as a client would, and that time counts.

- **with bridge and module** (the product): Synapse with our registration and modules; the
  bridge running as its own process (``practice-bridge run``, SQLite) and receiving every
  transaction, so the pipeline's effects (post-hoc rules, chat activity, unread index, outbox)
  happen while the staff member waits. The practice, its practitioner and client are put
  through the API, the sessions are minted by the bridge, the chat is made by
  ``POST /chats/direct``, and the module reads the chat's policy on every client message.
- **plain Synapse**: the same homeserver config without the appservice and modules; two plain
  users (shared-secret registration, password login) in a private room the staff member made.

Both Synapses run side by side; the sends alternate between them (and which goes first
alternates), with a short pause after each so one side's after-work does not fall on the
other's clock. Figures: median and p99 with the product; ratios against plain Synapse from this
run.

Twice, in alternating blocks of sends: with every process free to run on every CPU (**shared
CPUs**, as on a small test machine), and with both Synapses pinned to the first CPU and the
bridge to the second (**split CPUs**, as in production, where the bridge does not take
Synapse's cores; every thread of each process, as ``taskset -a`` does). Target: at most 5% more
at the median on split CPUs; the shared figure is reported beside it. On a machine with one
CPU only the shared figures are made.

    python bench/e2e.py [--sends N] [--warmup-sends N] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench._product import (  # noqa: E402
    DOMAIN,
    V3,
    Homeserver,
    call,
    product_config,
    register_plain_user,
    start_bridge,
    start_homeserver,
    stop_process,
)
from bench.table import latency_rows, script_main, size  # noqa: E402

TARGET_RATIO = 1.05
BLOCK = 50  # sends per side before switching between shared and split CPUs
PARK_SECONDS = 0.03  # the staff member's long-poll is waiting in Synapse before the send
SETTLE_SECONDS = 0.06  # after each sample: what follows a send finishes off the clock
# A frontend's filter: recent timeline, members lazy-loaded, no presence.
STAFF_FILTER = json.dumps(
    {
        "presence": {"types": []},
        "room": {"timeline": {"limit": 20}, "state": {"lazy_load_members": True}},
    }
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sends", type=int, default=600, help="timed sends per side")
    parser.add_argument("--warmup-sends", type=int, default=50, help="untimed sends per side")


@dataclass
class Side:
    """One Synapse, a room in it, a client who sends and a staff member who syncs."""

    name: str
    hs: Homeserver
    room: str = ""
    client_token: str = ""
    staff_token: str = ""
    since: str = ""


async def _product(session: aiohttp.ClientSession, side: Side, config: Any) -> None:
    """A practice through the API: its practitioner and client, sessions, a direct chat."""
    api = f"http://127.0.0.1:{config.appservice.port}{config.provisioning.prefix}"
    secret = config.provisioning.shared_secret
    practice = f"{api}/practices/bench"

    async def backend(method: str, path: str, body: dict[str, Any]) -> Any:
        return await call(session, method, practice + path, body, token=secret)

    await backend("PUT", "", {"name": "Sunrise", "plan": "team", "timezone": "UTC"})
    lee = {"name": "Dr. Lee", "email": "lee@example.org", "role": "practitioner"}
    await backend("PUT", "/staff/s1", lee)
    anna = {"name": "Anna Example", "email": "anna@example.org", "activated": True}
    await backend("PUT", "/clients/c1", anna | {"portal_access": True, "family_primary_id": None})
    staff = await backend("POST", "/sessions", {"staff_id": "s1"})
    client = await backend("POST", "/sessions", {"client_id": "c1"})
    side.staff_token, side.client_token = staff["access_token"], client["access_token"]
    chat = await call(
        session, "POST", f"{api}/chats/direct", {"client_id": "c1"}, token=side.staff_token
    )
    side.room = str(chat["chat_id"])


async def _plain(session: aiohttp.ClientSession, side: Side) -> None:
    """Two plain users and a private room the staff member made and the client joined."""
    side.staff_token = await register_plain_user(session, side.hs, "staff", "bench-staff-pw")
    side.client_token = await register_plain_user(session, side.hs, "client", "bench-client-pw")
    client_id = f"@client:{DOMAIN}"
    created = await call(
        session,
        "POST",
        f"{side.hs.url}{V3}/createRoom",
        {"preset": "private_chat", "is_direct": True, "invite": [client_id]},
        token=side.staff_token,
    )
    side.room = str(created["room_id"])
    await call(
        session,
        "POST",
        f"{side.hs.url}{V3}/rooms/{quote(side.room)}/join",
        {},
        token=side.client_token,
    )


async def _sync(session: aiohttp.ClientSession, side: Side, timeout_ms: int) -> dict[str, Any]:
    params = {"filter": STAFF_FILTER, "timeout": str(timeout_ms)}
    if side.since:
        params["since"] = side.since
    async with session.get(
        f"{side.hs.url}{V3}/sync",
        params=params,
        headers={"Authorization": f"Bearer {side.staff_token}"},
    ) as resp:
        if resp.status != 200:
            raise RuntimeError(f"/sync on {side.name}: {resp.status} {await resp.text()}")
        body: dict[str, Any] = await resp.json()
    side.since = str(body["next_batch"])
    return body


def _holds(body: dict[str, Any], room: str, nonce: str) -> bool:
    timeline = ((body.get("rooms") or {}).get("join") or {}).get(room, {}).get("timeline", {})
    return any(
        nonce in str((ev.get("content") or {}).get("body", ""))
        for ev in timeline.get("events", [])
    )


async def _sample(session: aiohttp.ClientSession, side: Side) -> float:
    """One send, timed until the staff member's sync has shown it."""
    nonce = uuid.uuid4().hex
    poll = asyncio.create_task(_sync(session, side, 30_000))
    await asyncio.sleep(PARK_SECONDS)
    path = f"{side.hs.url}{V3}/rooms/{quote(side.room)}/send/m.room.message/{nonce}"
    content = {"msgtype": "m.text", "body": f"Could we move Thursday's session? ({nonce})"}
    start = time.perf_counter()
    async with session.put(
        path, json=content, headers={"Authorization": f"Bearer {side.client_token}"}
    ) as resp:
        await resp.read()
        if resp.status != 200:
            poll.cancel()
            raise RuntimeError(f"send on {side.name}: {resp.status}")
    while not _holds(await poll, side.room, nonce):
        poll = asyncio.create_task(_sync(session, side, 30_000))
    return time.perf_counter() - start


async def _processed(db_path: Path, room: str, sends: int, timeout: float = 60) -> None:
    """The bridge really did its work: every client message of the run is in its index."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db_path) as db:
            (done,) = db.execute(
                "SELECT count(*) FROM chat_message WHERE room_id = ?", (room,)
            ).fetchone()
        if done >= sends:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bridge processed {done} of {sends} messages")
        await asyncio.sleep(0.2)


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of a process onto these CPUs (``taskset -a -p``)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, FileNotFoundError):
            pass  # a thread that has just ended


def place(split: bool, synapses: list[int], bridge: int) -> None:
    """Split: Synapse on the first CPU, the bridge on the second; shared: all on all."""
    every = set(range(os.cpu_count() or 1))
    for pid in synapses:
        pin(pid, {0} if split else every)
    pin(bridge, {1} if split else every)


async def measure(messages: int, warmup: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        started: list[Homeserver] = []
        bridge: subprocess.Popen[bytes] | None = None
        try:
            product_root, plain_root = tmp / "product", tmp / "plain"
            config = product_config(
                product_root,
                **{
                    "appservice.database": f"sqlite:{product_root / 'bridge.db'}",
                    "provisioning.token_cache_seconds": 60,
                },
            )
            hs = start_homeserver(product_root, config, product=True)
            started.append(hs)
            product = Side("with bridge and module", hs)
            plain_hs = start_homeserver(plain_root, product_config(plain_root), product=False)
            started.append(plain_hs)
            plain = Side("plain Synapse", plain_hs)
            bridge = await start_bridge(config, product_root / "bridge.log")
            can_split = (os.cpu_count() or 1) >= 2
            modes = ("shared", "split") if can_split else ("shared",)
            timings = {(m, side.name): [] for m in modes for side in (product, plain)}
            synapses = [pid for h in started for pid in h.synapse.pids]
            block = min(BLOCK, messages)
            async with aiohttp.ClientSession() as session:
                await _product(session, product, config)
                await _plain(session, plain)
                for side in (product, plain):
                    await _sync(session, side, 0)
                for i in range(warmup + len(modes) * messages):
                    mode = modes[(max(i - warmup, 0) // block) % len(modes)]
                    if i == 0 or i >= warmup and (i - warmup) % block == 0:
                        place(mode == "split", synapses, bridge.pid)
                    for side in (product, plain) if i % 2 == 0 else (plain, product):
                        elapsed = await _sample(session, side)
                        if i >= warmup:
                            timings[(mode, side.name)].append(elapsed)
                        await asyncio.sleep(SETTLE_SECONDS)
                place(False, synapses, bridge.pid)
            if bridge.poll() is not None:
                raise RuntimeError("the bridge stopped during the run")
            await _processed(
                product_root / "bridge.db", product.room, warmup + len(modes) * messages
            )
        finally:
            if bridge is not None:
                stop_process(bridge)
            for hs in started:
                hs.stop()
    rows: list[dict[str, Any]] = []
    for mode in modes:
        where = "Synapse on CPU 0, bridge on CPU 1" if mode == "split" else "shared CPUs"
        what = f"end to end, client send -> staff /sync sees it ({messages} sends, {where})"
        mode_rows = latency_rows(
            what,
            timings[(mode, product.name)],
            timings[(mode, plain.name)],
            side=", with bridge and module",
            against="plain Synapse",
            target=TARGET_RATIO,
        )
        if mode == "shared" and can_split:
            # The target is the split figure's; the shared one is reported beside it.
            mode_rows[0]["target"] = "reported (the split-CPU median is the target)"
        rows += mode_rows
    return rows


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    return await measure(size(args, "sends", 600, 10), size(args, "warmup_sends", 50, 3))


def main() -> None:
    script_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
