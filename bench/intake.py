"""Intake throughput: events per second from HTTP PUT to processed, against a bare AppService.

What is measured: transactions of 100 ``m.room.message`` events, sent by namespace clients in
practice chats (several rooms, interleaved), are PUT one at a time to the appservice port, as
Synapse sends them, and the clock stops when the bridge's pipeline has processed every event
(``pipeline.wait_idle()``): stored, acknowledged, then run through the handlers the real
``Bridge`` registers inside the transaction that marks them processed.

The baseline is a bare ``mautrix.appservice.AppService`` with no handlers of its own, which only
acknowledges: same HTTP client, same payloads, same run, timed to its last acknowledgement.
Rounds alternate between the two (and which goes first); the figures are the medians and the
ratio is the median of each round's figure over the bare run beside it.

The bridge is the real ``bridge.app.Bridge`` (its intake, queue, pipeline and handlers), started
without the homeserver-facing steps: no Synapse is needed, its address points nowhere.

    python bench/intake.py [--transactions N] [--postgres DSN] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from mautrix.appservice import AppService  # noqa: E402
from mautrix.types import RoomID  # noqa: E402
from mautrix.util.async_db import Database  # noqa: E402

from appservice.homeserver import MemoryASStateStore  # noqa: E402
from bench._product import DOMAIN  # noqa: E402
from bench.table import script_main, size  # noqa: E402
from bridge.app import Bridge  # noqa: E402
from bridge.chats.models import Chat  # noqa: E402
from bridge.db import create_database  # noqa: E402
from bridge.directory.models import Client, Practice, Staff  # noqa: E402
from config import generate_config  # noqa: E402
from registration.homeserver import free_port  # noqa: E402
from tests.postgres import PG_ENV, postgres_schema  # noqa: E402

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing at start-up may need the homeserver
EVENTS_PER_TXN = 100
ROOMS = 8
TARGET_RATIO = 0.8
TARGET_SQLITE_RATE = 5000
PRACTICE = "bench1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transactions", type=int, default=60, help="per round (100 events)")
    parser.add_argument("--rounds", type=int, default=6, help="the median round counts")
    parser.add_argument(
        "--without-handlers",
        action="store_true",
        help="also measure the intake machinery with the handlers taken out",
    )


class Load:
    """The transactions Synapse would send: bodies serialised before the clock starts."""

    def __init__(self, bridge: Bridge, transactions: int) -> None:
        mapper = bridge.mapper
        self.clients = [mapper.user_id("client", PRACTICE, f"c{i}") for i in range(ROOMS)]
        self.staff = [mapper.user_id("staff", PRACTICE, f"s{i}") for i in range(2)]
        self.rooms = [f"!{uuid.uuid4().hex[:18]}:{DOMAIN}" for _ in range(ROOMS)]
        self.transactions = transactions

    def bodies(self) -> list[tuple[str, bytes]]:
        ts = int(time.time() * 1000)
        out = []
        n = 0
        for _ in range(self.transactions):
            events = []
            for _ in range(EVENTS_PER_TXN):
                i = n % ROOMS
                n += 1
                events.append(
                    {
                        "type": "m.room.message",
                        "room_id": self.rooms[i],
                        "sender": self.clients[i],
                        "event_id": f"${uuid.uuid4().hex}{uuid.uuid4().hex[:11]}",
                        "origin_server_ts": ts + n,
                        "content": {
                            "msgtype": "m.text",
                            "body": "Thanks, see you Thursday at 10. Should I bring my food log "
                            f"and the sleep diary? ({n})",
                            "m.mentions": {},
                        },
                        "unsigned": {"age": 42, "membership": "join"},
                    }
                )
            body = {"events": events, "ephemeral": []}
            out.append((f"bench-{uuid.uuid4().hex}", json.dumps(body).encode()))
        return out

    async def seed(self, bridge: Bridge) -> None:
        """A practice whose chats these rooms are, so handlers do their real work."""
        store = bridge.directory_store
        await store.upsert_practice(Practice(PRACTICE, "Sunrise Wellness", "team", "UTC"))
        for i, user_id in enumerate(self.staff):
            await store.upsert_staff(
                Staff(PRACTICE, f"s{i}", user_id, f"Staff {i}", f"s{i}@example.com", "owner")
            )
        for i, user_id in enumerate(self.clients):
            await store.upsert_client(
                Client(PRACTICE, f"c{i}", user_id, f"Client {i}", f"c{i}@example.com", True, True)
            )
            await bridge.chat_store.insert(
                Chat(
                    RoomID(self.rooms[i]),
                    PRACTICE,
                    "direct",
                    None,
                    f"s{i % 2}",
                    staff_ids=[f"s{i % 2}"],
                    client_ids=[f"c{i}"],
                )
            )


async def send_all(session: aiohttp.ClientSession, base: str, token: str, load: Any) -> float:
    """PUT every transaction in turn; the time from the first PUT to the last answer."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    start = time.perf_counter()
    for txn_id, body in load:
        async with session.put(
            f"{base}/_matrix/app/v1/transactions/{txn_id}", data=body, headers=headers
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"transaction {txn_id} answered {resp.status}")
            await resp.read()
    return time.perf_counter() - start


async def measure_bare(
    session: aiohttp.ClientSession, bodies: list[tuple[str, bytes]], hs_token: str
) -> float:
    port = free_port()
    bare = AppService(
        server=NOWHERE,
        domain=DOMAIN,
        as_token="bench-as-token",
        hs_token=hs_token,
        bot_localpart="bench_bot",
        id="bench",
        state_store=MemoryASStateStore(),
        ephemeral_events=True,
        log=logging.getLogger("bench.bare"),
    )
    await bare.start("127.0.0.1", port)
    try:
        seconds = await send_all(session, f"http://127.0.0.1:{port}", hs_token, bodies)
    finally:
        await bare.stop()
    return len(bodies) * EVENTS_PER_TXN / seconds


async def measure_full(
    session: aiohttp.ClientSession, bridge: Bridge, bodies: list[tuple[str, bytes]]
) -> float:
    base = f"http://127.0.0.1:{bridge.config.appservice.port}"
    before = bridge.pipeline.processed
    start = time.perf_counter()
    await send_all(session, base, bridge.config.appservice.hs_token, bodies)
    await bridge.pipeline.wait_idle(timeout=600)
    seconds = time.perf_counter() - start
    done = bridge.pipeline.processed - before
    if done != len(bodies) * EVENTS_PER_TXN:
        raise RuntimeError(f"{done} events processed, not {len(bodies) * EVENTS_PER_TXN}")
    return done / seconds


async def start_bridge(db: Database, tmp: Path, *, handlers: bool = True) -> Bridge:
    port = free_port()
    config = generate_config(
        tmp / f"config-{port}.yaml",
        **{
            "homeserver.address": NOWHERE,
            "homeserver.domain": DOMAIN,
            "appservice.address": f"http://127.0.0.1:{port}",
            "appservice.port": port,
            "appservice.as_token": "bench-as-token",
            "appservice.hs_token": f"bench-hs-{uuid.uuid4().hex}",
        },
    )
    bridge = Bridge(config, db=db)
    if not handlers:  # The intake machinery alone: what the handlers cost is the difference.
        bridge.pipeline.handlers.clear()
        bridge.pipeline.batch_handlers.clear()
    # Bridge.start() without the bot's registration and ping (they need the homeserver).
    await bridge.db.start()
    await bridge.az.start("127.0.0.1", port)
    bridge.pipeline.start()
    await bridge.pipeline.wait_idle()
    return bridge


async def stop_bridge(bridge: Bridge) -> None:
    await bridge.pipeline.stop()
    await bridge.az.stop()
    await bridge.db.stop()


async def measure_backend(
    label: str, db: Database, tmp: Path, transactions: int, rounds: int, handlers: bool = True
) -> dict[str, Any]:
    bridge = await start_bridge(db, tmp, handlers=handlers)
    load = Load(bridge, transactions)
    base = f"http://127.0.0.1:{bridge.config.appservice.port}"
    token = bridge.config.appservice.hs_token
    full_rates, bare_rates = [], []
    async with aiohttp.ClientSession() as session:
        try:
            await load.seed(bridge)
            warmup = Load(bridge, max(1, transactions // 10))
            warmup.rooms = load.rooms
            await send_all(session, base, token, warmup.bodies())
            await bridge.pipeline.wait_idle(timeout=600)
            for n in range(rounds):
                bodies = load.bodies()
                if n % 2 == 0:  # Which goes first alternates, so drift falls on both alike.
                    bare_rates.append(await measure_bare(session, bodies, token))
                full_rates.append(await measure_full(session, bridge, bodies))
                if n % 2 == 1:
                    bare_rates.append(await measure_bare(session, load.bodies(), token))
            failed = await bridge.db.fetchval(
                "SELECT count(*) FROM event_queue WHERE outcome <> 'ok'"
            )
            if failed:
                raise RuntimeError(f"{failed} events failed in the handlers")
        finally:
            await stop_bridge(bridge)
    figure, baseline = statistics.median(full_rates), statistics.median(bare_rates)
    # Paired: each round's figure against the bare run next to it, then the median.
    ratio = statistics.median(f / b for f, b in zip(full_rates, bare_rates, strict=True))
    sqlite = label == "SQLite"
    if handlers:
        name = f"intake, {label}: PUT -> stored -> processed"
        target = f">= {TARGET_RATIO} of bare" + (
            f", >= {TARGET_SQLITE_RATE:,}/s" if sqlite else ""
        )
        met = ratio >= TARGET_RATIO and (not sqlite or figure >= TARGET_SQLITE_RATE)
        target += " (met)" if met else " (MISSED)"
    else:
        name = f"intake, {label}: same, handlers taken out"
        target = "(what the handlers cost is the difference)"
    return {
        "name": name,
        "figure": figure,
        "unit": "events/s",
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
    }


async def _on_postgres(
    dsn: str, tmp: Path, transactions: int, rounds: int, handlers: bool
) -> dict[str, Any]:
    async with postgres_schema(dsn, "bench") as schema:
        db = create_database(
            dsn, {"server_settings": {"search_path": schema}, "min_size": 1, "max_size": 5}
        )
        return await measure_backend("PostgreSQL", db, tmp, transactions, rounds, handlers)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    transactions = size(args, "transactions", 200, 3)
    rounds = size(args, "rounds", 3, 1)
    dsn = getattr(args, "postgres", None) or os.environ.get(PG_ENV)
    modes = [True, False] if getattr(args, "without_handlers", False) else [True]
    logging.getLogger().setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp_name:
        tmp = Path(tmp_name)
        for handlers in modes:
            db = create_database(f"sqlite:{tmp / f'bridge-{handlers}.db'}")
            rows.append(await measure_backend("SQLite", db, tmp, transactions, rounds, handlers))
        if dsn:
            for handlers in modes:
                rows.append(await _on_postgres(dsn, tmp, transactions, rounds, handlers))
    return rows


def main() -> None:
    script_main(__doc__, add_arguments, run, postgres_env=PG_ENV)


if __name__ == "__main__":
    main()
