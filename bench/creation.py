"""Starting chats: ``POST /chats/direct`` one after another, against Synapse's own cost for the
same room, and ``POST /chats/direct/bulk`` for a practice's first contact with many clients.

Everything runs for real, as deployed: one Synapse with our registration and modules (rate
limits off) and the bridge as its own process (``practice-bridge run``), on SQLite and then,
with a fresh Synapse, on PostgreSQL when a DSN is given. A practice with a practitioner and
activated clients is put through the API first.

What is measured, on the same Synapse, interleaved one for one (so both see the same machine):

- **POST /chats/direct**: the practitioner opens a direct chat with a client who has none
  yet, one after another, each answer read before the next request: chats per second.
- **Synapse alone** (the baseline): what such a chat is in Synapse, asked directly with the
  appservice token: ``createRoom`` as the bot with the same body the bridge sends (the same
  initial state, power levels and invites, copied from a chat the bridge made in this run),
  then the practitioner's and the client's joins (``?user_id=``, both at once, as the bridge
  asks for them). The bridge hears of these rooms too (every event goes to it), as it does of
  its own.
- **POST /chats/direct/bulk**: the practitioner opens chats with many clients in requests of
  ``--creation-batch`` clients each: chats per second, against as many chats opened one by
  one, a block of them beside each bulk request (which goes first alternates).

Target: one by one, at most 1.2 times Synapse's time per room.

    python bench/creation.py [--creation-chats N] [--creation-bulk N] [--creation-batch N]
                             [--postgres DSN] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench._product import (  # noqa: E402
    V3,
    Homeserver,
    ProductApi,
    call,
    product_config,
    running_product,
)
from bench.table import script_main  # noqa: E402
from bridge.chats.layout import ROOM_VERSION, create_room_body  # noqa: E402
from bridge.constants import CHAT_STATE, POLICY_STATE  # noqa: E402
from tests.postgres import PG_ENV, postgres_schema  # noqa: E402

TARGET_RATIO = 1.2
# A bridge database: None for SQLite in the run's folder, or a PostgreSQL DSN and pool options.
Database = tuple[str, dict[str, Any]] | None
PRACTICE = "creation"
_INITIAL = (
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    CHAT_STATE,
    POLICY_STATE,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Named apart from bench/scale.py's --chats: make bench puts every bench's options together.
    parser.add_argument(
        "--creation-chats", type=int, default=300, help="chats one by one (and as many rooms)"
    )
    parser.add_argument("--creation-bulk", type=int, default=500, help="chats opened in bulk")
    parser.add_argument("--creation-batch", type=int, default=100, help="clients a bulk request")


class Bench(ProductApi):
    def __init__(self, config: Any, hs: Homeserver, session: aiohttp.ClientSession) -> None:
        super().__init__(config, hs, session)
        self.staff_token = ""
        self.staff_user = ""

    async def setup(self, clients: int) -> None:
        p = PRACTICE
        put = self.put
        await put(f"/practices/{p}", {"name": "Sunrise", "plan": "team", "timezone": "UTC"})
        await put(
            f"/practices/{p}/staff/s1",
            {"name": "Dr. Lee", "email": "lee@example.org", "role": "practitioner"},
        )
        queue = iter(range(clients))

        async def worker() -> None:
            for i in queue:
                await put(
                    f"/practices/{p}/clients/c{i}",
                    {
                        "name": f"Client {i:05d}",
                        "email": f"c{i}@example.org",
                        "activated": True,
                        "portal_access": True,
                        "family_primary_id": None,
                    },
                )

        await asyncio.gather(*(worker() for _ in range(8)))
        session = await call(
            self.session,
            "POST",
            f"{self.api}/practices/{p}/sessions",
            {"staff_id": "s1"},
            token=self.secret,
        )
        self.staff_token, self.staff_user = session["access_token"], session["user_id"]

    async def direct(self, client: int) -> tuple[float, str]:
        start = time.perf_counter()
        created = await call(
            self.session,
            "POST",
            f"{self.api}/chats/direct",
            {"client_id": f"c{client}"},
            token=self.staff_token,
        )
        return time.perf_counter() - start, str(created["chat_id"])

    async def as_bot(self, method: str, path: str, body: Any = None, user: str = "") -> Any:
        params = {"user_id": user} if user else None
        return await call(
            self.session, method, self.hs.url + path, body, token=self.as_token, params=params
        )

    async def model(self, room: str) -> dict[str, Any]:
        """The createRoom body the bridge sent for ``room`` (layout.py builds it), with the
        contents read back from the room's state."""
        state = await self.as_bot("GET", f"{V3}/rooms/{quote(room)}/state")
        by_type = {ev["type"]: ev for ev in state if ev.get("state_key") == ""}
        return create_room_body(
            name=None,
            is_direct=True,
            initial_state=[
                {"type": t, "state_key": "", "content": by_type[t]["content"]} for t in _INITIAL
            ],
            power_levels=by_type["m.room.power_levels"]["content"],
            invitees=[],
            room_version=by_type["m.room.create"]["content"].get("room_version", ROOM_VERSION),
        )

    async def bare(self, model: dict[str, Any], client: int) -> float:
        """The same room in Synapse alone: createRoom as the bot, then the two joins."""
        user = self.mapper.user_id("client", PRACTICE, f"c{client}")
        body = {**model, "invite": [self.staff_user, user]}
        start = time.perf_counter()
        room = (await self.as_bot("POST", f"{V3}/createRoom", body))["room_id"]
        join = f"{V3}/rooms/{quote(room)}/join"
        # At once, as the bridge asks for them.
        await asyncio.gather(*(self.as_bot("POST", join, {}, m) for m in (self.staff_user, user)))
        return time.perf_counter() - start

    async def bulk(self, clients: list[int]) -> float:
        """One bulk request for these clients; the seconds it took."""
        start = time.perf_counter()
        answer = await call(
            self.session,
            "POST",
            f"{self.api}/chats/direct/bulk",
            {"client_ids": [f"c{i}" for i in clients]},
            token=self.staff_token,
        )
        failed = [r for r in answer["results"] if "chat_id" not in r]
        if failed:
            raise RuntimeError(f"bulk: {len(failed)} failed, e.g. {failed[0]}")
        return time.perf_counter() - start

    async def bulk_against_one_by_one(
        self, first: int, bulk: int, batch: int
    ) -> tuple[float, float]:
        """``bulk`` clients in bulk requests of ``batch``, each request beside as many chats
        opened one by one (alternating which goes first): the seconds each way took."""
        in_bulk = one_by_one = 0.0
        for n, start in enumerate(range(first, first + 2 * bulk, 2 * batch)):
            size = min(batch, (first + 2 * bulk - start) // 2)
            mine, theirs = list(range(start, start + size)), range(start + size, start + 2 * size)
            for which in ("bulk", "one") if n % 2 == 0 else ("one", "bulk"):
                if which == "bulk":
                    in_bulk += await self.bulk(mine)
                else:
                    one_by_one += sum([(await self.direct(c))[0] for c in theirs])
        return in_bulk, one_by_one


async def measure(
    label: str, database: Database, chats: int, bulk: int, batch: int
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-creation-") as tmp_name:
        root = Path(tmp_name)
        url, opts = database or (f"sqlite:{root / 'bridge.db'}", {})
        config = product_config(root)
        config.appservice.database = url
        config.appservice.database_opts = opts
        config.save()
        async with running_product(root, config) as (hs, bridge):
            async with aiohttp.ClientSession() as session:
                bench = Bench(config, hs, session)
                # Clients 0..chats-1 get a chat from the bridge, chats..2*chats-1 a bare room,
                # the next 2*bulk half in bulk and half one by one beside them.
                await bench.setup(2 * chats + 2 * bulk + 1)
                _, first = await bench.direct(2 * chats + 2 * bulk)  # warm; the model room
                model = await bench.model(first)
                ours: list[float] = []
                theirs: list[float] = []
                for n in range(chats):
                    pair = [("ours", n), ("theirs", chats + n)]
                    for which, client in pair if n % 2 == 0 else reversed(pair):
                        if which == "ours":
                            ours.append((await bench.direct(client))[0])
                        else:
                            theirs.append(await bench.bare(model, client))
                if bulk:
                    bulk_s, beside_s = await bench.bulk_against_one_by_one(2 * chats, bulk, batch)
            if bridge.poll() is not None:
                raise RuntimeError("the bridge stopped during the run")
    per_chat, per_room = sum(ours) / len(ours), sum(theirs) / len(theirs)
    ratio = per_chat / per_room
    one_by_one = 1 / per_chat
    rows = [
        {
            "name": f"POST /chats/direct, one after another, {label} ({chats} chats)",
            "figure": one_by_one,
            "unit": "chats/s",
            "baseline": 1 / per_room,
            "ratio": ratio,
            "target": f"time per chat <= {TARGET_RATIO} x Synapse's createRoom + 2 joins "
            f"({per_chat * 1000:.0f} vs {per_room * 1000:.0f} ms)",
            "met": ratio <= TARGET_RATIO,
        }
    ]
    if bulk:
        bulk_rate, beside_rate = bulk / bulk_s, bulk / beside_s
        rows.append(
            {
                "name": f"POST /chats/direct/bulk, {label} ({bulk} chats, {batch} a request)",
                "figure": bulk_rate,
                "unit": "chats/s",
                "baseline": beside_rate,
                "ratio": bulk_rate / beside_rate,
                "target": "(baseline: as many POST /chats/direct one after another, "
                "interleaved with the bulk requests)",
            }
        )
    return rows


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if getattr(args, "smoke", False):
        sizes = (3, 4, 2)
    else:
        sizes = (args.creation_chats, args.creation_bulk, args.creation_batch)
    rows = await measure("SQLite", None, *sizes)
    dsn = getattr(args, "postgres", None) or os.environ.get(PG_ENV)
    if dsn:
        # A schema of its own, dropped afterwards.
        async with postgres_schema(dsn, "bench") as schema:
            opts = {"min_size": 1, "max_size": 10, "server_settings": {"search_path": schema}}
            rows += await measure("PostgreSQL", (dsn, opts), *sizes)
    return rows


def main() -> None:
    script_main(__doc__, add_arguments, run, postgres_env=PG_ENV)


if __name__ == "__main__":
    main()
