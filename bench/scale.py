"""A large practice: 10,000 clients and 2,000 chats for one practitioner, on SQLite and PostgreSQL.

Everything runs for real, as deployed: one Synapse with our registration and modules (rate
limits off, its own SQLite) and the bridge as its own process (``practice-bridge run``), once on
each bridge database, with a practice of its own each time. Nothing is inserted behind the
API's back: every client, chat, message and flag below went through the provisioning API or
Synapse, so the rooms, memberships, account data and database rows are all real.

What is measured, per bridge database:

- **directory upsert**: ``PUT /practices/{p}/clients/{c}``, 8 at a time, as a portal backend
  syncs its directory. Nine in ten clients are activated: each of those PUTs registers a Matrix
  account on Synapse and sets its display name. The baseline is the same Synapse calls made
  directly (register, read and set the display name; users the bridge never hears of), same
  concurrency, same run: the floor Synapse sets. The tenth are not activated (no account):
  their PUTs touch the bridge database alone, which shows what dominates.
- **chats**: 2,000 direct chats, each made by ``POST /chats/direct`` as the practitioner, one
  after another (``createRoom`` with the chat and policy state, two joins, ``m.direct`` of
  both): timed and reported, since it is most of the run. Then, as in life, the client writes
  in every chat, the practitioner answers in half of them and has read a quarter (read
  receipts), pins 1 in 100, hides 1 in 40 and marks 1 in 20 unread. The bridge processes
  every message (chat activity, unread index, outbox) before any list is timed.
- **GET /chats** and **GET /contacts** as the practitioner, with their own minted Matrix
  session as a portal frontend calls them, one at a time, the body read to its last byte:
  median and p99, each round right after a client wrote in one of the practitioner's chats
  (another each round) and the bridge processed it, as the portal reloads the list on a new
  message. ``GET /chats`` is timed as the Messages page asks for it: the first screen
  (``limit=60``), and the whole list (that screen, then ``next_batch`` pages of 1,000 until the
  last, summed). After the first list the bridge follows the practitioner (one open
  ``/sync`` as them that Synapse answers when a flag or a read changes), so the timed lists
  read its mirror; an incremental ``/sync`` as that user (same filter, as the bridge makes it on
  a 2,000-room account), interleaved, is reported beside them for what a list that waited on
  Synapse would cost at least.
  Baseline: the same requests for the practitioner of a small practice (100 clients, 10 chats)
  on the same bridge, interleaved, so the ratio is what size costs.
- **first list**: the first screen of each practitioner's very first ``GET /chats`` (the bridge
  has never read their flags), against the small practice's first one. The bridge reads the
  tagged rooms and the room account data instead of a first ``/sync`` over 2,000 rooms, and
  runs that ``/sync`` afterwards in the background for earlier receipts: the timed requests
  wait until it has finished (``BACKFILL_WAIT_S``), as they would not share the machine with it.

Targets at this size: first screen p99 <= 25 ms, whole list p99 <= 60 ms, ``GET /contacts``
p99 <= 50 ms, first list <= 500 ms.

    python bench/scale.py [--clients N] [--chats N] [--requests N] [--postgres DSN] [--smoke]

To see where a request spends its time, run ``py-spy top --pid <bridge>`` while it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from mautrix.util.async_db import Database  # noqa: E402

from bench._product import (  # noqa: E402
    V3,
    Homeserver,
    ProductApi,
    call,
    product_config,
    start_bridge,
    start_homeserver,
    stop_process,
)
from bench.table import p99, script_main, size  # noqa: E402
from bridge.chats.userstate import SYNC_FILTER  # noqa: E402
from bridge.db import create_database  # noqa: E402
from config import Config  # noqa: E402
from tests.postgres import PG_ENV, postgres_schema  # noqa: E402

TARGET_FIRST_SCREEN_P99_MS = 25.0
TARGET_WHOLE_LIST_P99_MS = 60.0
TARGET_CONTACTS_P99_MS = 50.0
TARGET_FIRST_LIST_MS = 500.0
FIRST_SCREEN, REST_PAGE = 60, 1000  # the Messenger's first page; the rest in the largest pages
BACKFILL_WAIT_S = 30.0
CONCURRENCY = 8
SMALL_CLIENTS, SMALL_CHATS = 100, 10
_SYNC_FILTER_JSON = json.dumps(SYNC_FILTER)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=10_000, help="clients of the practice")
    parser.add_argument("--chats", type=int, default=2_000, help="chats of its practitioner")
    parser.add_argument("--requests", type=int, default=300, help="timed GETs of each kind")


@dataclass
class Practice:
    """A practice built through the API, and its practitioner's session."""

    practice_id: str
    clients: int
    chats: int
    staff_token: str = ""
    staff_user: str = ""
    rooms: list[str] = field(default_factory=list)
    writers: list[str] = field(default_factory=list)  # the client user of each room


def marked(rooms: list[str]) -> dict[str, list[str]]:
    """The chats the practitioner pins (1 in 100), hides (1 in 40), marks unread (1 in 20)."""
    return {
        "pin": [r for n, r in enumerate(rooms) if n % 100 == 3],
        "hide": [r for n, r in enumerate(rooms) if n % 40 == 7],
        "unread": [r for n, r in enumerate(rooms) if n % 20 == 11],
    }


class Run(ProductApi):
    """One bridge database: the API and Synapse as a portal sees them, and the database itself
    (read only: to know when the bridge has processed what was sent)."""

    def __init__(
        self, config: Config, hs: Homeserver, db: Database, session: aiohttp.ClientSession
    ) -> None:
        super().__init__(config, hs, session)
        self.db = db

    async def as_user(self, method: str, path: str, user: str, body: Any = None) -> Any:
        """A Matrix request as a namespace user through the appservice (``?user_id=``)."""
        return await call(
            self.session,
            method,
            self.hs.url + path,
            body,
            token=self.as_token,
            params={"user_id": user},
        )

    # -- building a practice -----------------------------------------------------------------

    async def practice(self, practice: Practice) -> None:
        p = practice.practice_id
        await self.put(f"/practices/{p}", {"name": "Sunrise", "plan": "team", "timezone": "UTC"})
        for staff_id, role in (("o1", "owner"), ("s1", "practitioner"), ("t1", "team_member")):
            await self.put(
                f"/practices/{p}/staff/{staff_id}",
                {"name": f"Staff {staff_id}", "email": f"{staff_id}@example.org", "role": role},
            )
        session = await call(
            self.session,
            "POST",
            f"{self.api}/practices/{p}/sessions",
            {"staff_id": "s1"},
            token=self.secret,
        )
        practice.staff_token = session["access_token"]
        practice.staff_user = session["user_id"]

    async def clients(self, practice: Practice, ids: list[int], activated: bool) -> float:
        """PUT these clients, CONCURRENCY at a time; the seconds it took."""
        p = practice.practice_id
        queue = iter(ids)

        async def worker() -> None:
            for i in queue:
                await self.put(
                    f"/practices/{p}/clients/c{i}",
                    {
                        "name": f"Client {i:05d}",
                        "email": f"c{i}@example.org",
                        "activated": activated,
                        "portal_access": True,
                        "family_primary_id": None,
                    },
                )

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - start

    async def bare_registrations(self, count: int) -> float:
        """What an activated client's PUT asks of Synapse, asked directly: register, read and
        set the display name, for users the bridge never hears of. Seconds it took."""
        practice = f"bare{uuid.uuid4().hex[:8]}"
        queue = iter(range(count))

        async def worker() -> None:
            for i in queue:
                user = self.mapper.user_id("client", practice, f"c{i}")
                await call(
                    self.session,
                    "POST",
                    f"{self.hs.url}{V3}/register",
                    {
                        "username": user[1:].split(":")[0],
                        "type": "m.login.application_service",
                        "inhibit_login": True,
                    },
                    token=self.as_token,
                    params={"kind": "user"},
                )
                path = f"{V3}/profile/{quote(user)}/displayname"
                await self.as_user("GET", path, user)
                await self.as_user("PUT", path, user, {"displayname": f"Client {i:05d}"})

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - start

    async def chats(self, practice: Practice, client_ids: list[int], verbose: bool) -> float:
        """One direct chat per client, made by the practitioner one after another."""
        start = time.perf_counter()
        for n, i in enumerate(client_ids):
            created = await call(
                self.session,
                "POST",
                f"{self.api}/chats/direct",
                {"client_id": f"c{i}"},
                token=practice.staff_token,
            )
            practice.rooms.append(created["chat_id"])
            if verbose and n and n % 250 == 0:
                rate = n / (time.perf_counter() - start)
                print(f"  {n:,} chats ({rate:.1f}/s)", file=sys.stderr)
        return time.perf_counter() - start

    async def activity(self, practice: Practice, client_ids: list[int]) -> None:
        """A message from each client, answers in half, receipts, pins, hides, unread marks."""
        p = practice.practice_id
        rooms = practice.rooms
        clients = [self.mapper.user_id("client", p, f"c{i}") for i in client_ids]

        async def send(room: str, user: str, body: str) -> str:
            path = f"{V3}/rooms/{quote(room)}/send/m.room.message/{uuid.uuid4().hex}"
            sent = await self.as_user("PUT", path, user, {"msgtype": "m.text", "body": body})
            return str(sent["event_id"])

        async def each(items: list[Any], fn: Callable[[Any], Awaitable[Any]]) -> list[Any]:
            out: list[Any] = []
            for first in range(0, len(items), CONCURRENCY):
                out += await asyncio.gather(*(fn(x) for x in items[first : first + CONCURRENCY]))
            return out

        practice.writers = clients
        events = await each(
            list(zip(rooms, clients, strict=True)),
            lambda rc: send(rc[0], rc[1], "Could we move Thursday's session?"),
        )
        staff = practice.staff_user
        answered = list(range(0, len(rooms), 2))
        await each(answered, lambda n: send(rooms[n], staff, "Of course, 10:00 works."))
        read = [n for n in range(1, len(rooms), 2) if n % 4 == 1]
        await each(
            read,
            lambda n: self.as_user(
                "POST",
                f"{V3}/rooms/{quote(rooms[n])}/receipt/m.read/{quote(events[n])}",
                staff,
                {},
            ),
        )
        await self.processed(p, len(rooms) + len(answered))
        for flag, picked in marked(rooms).items():
            paths = [f"{self.api}/chats/{quote(room)}/{flag}" for room in picked]
            await each(
                paths,
                lambda path: call(self.session, "PUT", path, {}, token=practice.staff_token),
            )

    async def processed(self, practice_id: str, messages: int, timeout: float = 600) -> None:
        """Wait until the bridge has processed every message sent in the practice's chats."""
        deadline = time.monotonic() + timeout
        while True:
            done = await self.db.fetchval(
                "SELECT count(*) FROM chat_message m JOIN chat c ON c.room_id = m.room_id "
                "WHERE c.practice_id = $1",
                practice_id,
            )
            pending = await self.db.fetchval(
                "SELECT count(*) FROM event_queue WHERE processed_at IS NULL"
            )
            if int(done or 0) >= messages and not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{done} of {messages} messages processed in {timeout}s")
            await asyncio.sleep(0.5)

    async def new_message(self, practice: Practice, n: int, timeout: float = 60) -> None:
        """A client writes in the practice's chat number ``n`` (of the chats not hidden); back
        once the bridge has processed it: the chat moved to the top, its unread count grew."""
        hidden = set(marked(practice.rooms)["hide"])
        shown = [i for i, room in enumerate(practice.rooms) if room not in hidden]
        i = shown[n % len(shown)]
        room, writer = practice.rooms[i], practice.writers[i]
        path = f"{V3}/rooms/{quote(room)}/send/m.room.message/{uuid.uuid4().hex}"
        sent = await self.as_user("PUT", path, writer, {"msgtype": "m.text", "body": "One more"})
        deadline = time.monotonic() + timeout
        while not await self.db.fetchval(
            "SELECT count(*) FROM chat_message WHERE event_id = $1", sent["event_id"]
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"a message was not processed in {timeout}s")
            await asyncio.sleep(0.005)

    # -- the timed requests ------------------------------------------------------------------

    async def timed_get(self, path: str, token: str) -> tuple[float, bytes]:
        start = time.perf_counter()
        async with self.session.get(
            self.api + path, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            body = await resp.read()
            status = resp.status
        elapsed = time.perf_counter() - start
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
        return elapsed, body

    async def timed_list(self, token: str) -> tuple[float, float, int]:
        """The first screen, then every next page: (first screen s, whole list s, chats)."""
        first, body = await self.timed_get(f"/chats?limit={FIRST_SCREEN}", token)
        page = json.loads(body)
        total, count = first, len(page["chats"])
        while page.get("next_batch"):
            path = f"/chats?limit={REST_PAGE}&from={quote(page['next_batch'])}"
            elapsed, body = await self.timed_get(path, token)
            page = json.loads(body)
            total += elapsed
            count += len(page["chats"])
        return first, total, count

    async def timed_sync(self, user: str, since: str | None) -> tuple[float, str]:
        params = {"filter": _SYNC_FILTER_JSON, "timeout": "0", "user_id": user}
        if since:
            params["since"] = since
        start = time.perf_counter()
        async with self.session.get(
            f"{self.hs.url}{V3}/sync",
            params=params,
            headers={"Authorization": f"Bearer {self.as_token}"},
        ) as resp:
            body = await resp.read()
        return time.perf_counter() - start, str(json.loads(body)["next_batch"])


async def build(run: Run, practice: Practice, *, verbose: bool) -> dict[str, float]:
    """The practice through the API; the timings of its directory and chats."""

    def say(text: str) -> None:
        if verbose:
            print(text, file=sys.stderr)

    await run.practice(practice)
    ids = list(range(practice.clients))
    activated = [i for i in ids if i % 10 != 9]
    inactive = [i for i in ids if i % 10 == 9]
    with_chat = activated[: practice.chats]
    if len(with_chat) < practice.chats:
        raise RuntimeError("more chats than activated clients")
    say(f"  PUT {len(activated):,} activated clients ...")
    t_active = await run.clients(practice, activated, True)
    say(f"  PUT {len(inactive):,} clients without an account ...")
    t_inactive = await run.clients(practice, inactive, False)
    say(f"  {practice.chats:,} chats through POST /chats/direct ...")
    t_chats = await run.chats(practice, with_chat, verbose)
    say("  messages, answers, receipts, pins, hides, unread marks ...")
    await run.activity(practice, with_chat)
    return {
        "active": len(activated) / t_active,
        "inactive": len(inactive) / t_inactive if inactive else 0.0,
        "chats_per_s": practice.chats / t_chats,
        "chats_seconds": t_chats,
    }


async def measure(
    label: str,
    database: tuple[str, dict[str, Any]],
    config: Config,
    hs: Homeserver,
    sizes: tuple[int, int, int],
) -> list[dict[str, Any]]:
    clients, chats, requests = sizes
    verbose = clients > 200
    url, opts = database
    config.appservice.database = url
    config.appservice.database_opts = opts
    config.save()
    log_path = Path(config.path).parent / f"bridge-{label}.log"
    bridge = await start_bridge(config, log_path)
    db = create_database(url, opts)
    await db.start()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2))
    try:
        run = Run(config, hs, db, session)
        tag = uuid.uuid4().hex[:6]
        big = Practice(f"big{tag}", clients, chats)
        small = Practice(f"small{tag}", min(SMALL_CLIENTS, clients), min(SMALL_CHATS, chats))
        print(f"scale, {label}: a practice of {clients:,} clients ...", file=sys.stderr)
        built = await build(run, big, verbose=verbose)
        bare = max(100, clients // 10)
        bare_rate = bare / await run.bare_registrations(bare)
        await build(run, small, verbose=False)

        # The first list of each practitioner (the bridge has never read their flags).
        first, _, listed = await run.timed_list(big.staff_token)
        first_small, _, _ = await run.timed_list(small.staff_token)
        expected = chats - len(marked(big.rooms)["hide"])  # the hidden ones are left out
        if listed != expected:
            raise RuntimeError(f"GET /chats listed {listed} chats, not {expected}")
        # The earlier receipts' first /sync runs in the background: let it finish.
        await asyncio.sleep(BACKFILL_WAIT_S if clients > 200 else 1)
        _, since = await run.timed_sync(big.staff_user, None)
        for _ in range(5):
            await run.timed_list(big.staff_token)
            await run.timed_get("/contacts", big.staff_token)

        times: dict[str, list[float]] = {
            key: []
            for key in ("screen", "whole", "screen_small", "whole_small", "contacts")
            + ("contacts_small", "sync")
        }

        async def lists(size: str, token: str) -> None:
            screen, whole, _ = await run.timed_list(token)
            times["screen" + size].append(screen)
            times["whole" + size].append(whole)

        async def contacts(size: str, token: str) -> None:
            times["contacts" + size].append((await run.timed_get("/contacts", token))[0])

        steps: list[Callable[[], Awaitable[None]]] = [
            lambda: lists("", big.staff_token),
            lambda: lists("_small", small.staff_token),
            lambda: contacts("", big.staff_token),
            lambda: contacts("_small", small.staff_token),
        ]
        print(f"scale, {label}: {requests} timed GETs of each kind ...", file=sys.stderr)
        for n in range(requests):
            # Each round follows a new message in each practice: no list is timed unchanged.
            await run.new_message(big, n * 7)
            await run.new_message(small, n)
            for step in steps if n % 2 == 0 else reversed(steps):
                await step()
            elapsed, since = await run.timed_sync(big.staff_user, since)
            times["sync"].append(elapsed)
        if bridge.poll() is not None:
            raise RuntimeError(f"the bridge stopped during the run (see {log_path})")
    finally:
        await session.close()
        await db.stop()
        stop_process(bridge)
    return _rows(label, big, built, bare_rate, (first, first_small), times)


def _vs(figure: float, target: float) -> str:
    return f"<= {target:g} ms " + ("(met)" if figure <= target else "(MISSED)")


def _rows(
    label: str,
    big: Practice,
    built: dict[str, float],
    bare_rate: float,
    first: tuple[float, float],
    times: dict[str, list[float]],
) -> list[dict[str, Any]]:
    size = f"{big.clients:,} clients, {big.chats:,} chats"
    ms = {k: [v * 1000 for v in vs] for k, vs in times.items()}
    small = f"baseline: {SMALL_CLIENTS} clients, {SMALL_CHATS} chats"

    def latency(name: str, key: str, target: float) -> dict[str, Any]:
        ours, theirs = p99(ms[key]), p99(ms[key + "_small"])
        return {
            "name": f"scale, {label}: {name} p99 ({size})",
            "figure": ours,
            "unit": "ms",
            "baseline": theirs,
            "ratio": ours / theirs,
            "target": f"{_vs(ours, target)}; median {statistics.median(ms[key]):,.1f} ms; {small}",
        }

    first_ms, first_small_ms = first[0] * 1000, first[1] * 1000
    screen_p99 = p99(ms["screen"])
    return [
        {
            "name": f"scale, {label}: PUT client, activated (a Matrix account registered)",
            "figure": built["active"],
            "unit": "clients/s",
            "baseline": bare_rate,
            "ratio": built["active"] / bare_rate,
            "target": "(baseline: the same Synapse calls without the bridge)",
        },
        {
            "name": f"scale, {label}: PUT client, not activated (bridge database only)",
            "figure": built["inactive"],
            "unit": "clients/s",
            "baseline": built["active"],
            "ratio": built["inactive"] / built["active"],
            "target": "(baseline: activated; the Matrix registration dominates)",
        },
        {
            "name": f"scale, {label}: POST /chats/direct, one after another",
            "figure": built["chats_per_s"],
            "unit": "chats/s",
            "baseline": None,
            "ratio": None,
            "target": f"{big.chats:,} real rooms took {built['chats_seconds']:,.0f} s",
        },
        latency(f"GET /chats first screen ({FIRST_SCREEN})", "screen", TARGET_FIRST_SCREEN_P99_MS),
        latency("GET /chats whole list (every page)", "whole", TARGET_WHOLE_LIST_P99_MS),
        {
            "name": f"scale, {label}: first GET /chats of a person never seen, first screen",
            "figure": first_ms,
            "unit": "ms",
            "baseline": first_small_ms,
            "ratio": first_ms / first_small_ms,
            "target": f"{_vs(first_ms, TARGET_FIRST_LIST_MS)}; {small}",
        },
        {
            "name": f"scale, {label}: an incremental Synapse /sync as the user, p99",
            "figure": p99(ms["sync"]),
            "unit": "ms",
            "baseline": screen_p99,
            "ratio": p99(ms["sync"]) / screen_p99,
            "target": "(baseline: the first screen's p99, which no longer waits on it) median "
            f"{statistics.median(ms['sync']):.1f} ms",
        },
        latency("GET /contacts", "contacts", TARGET_CONTACTS_P99_MS),
    ]


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    sizes = (
        size(args, "clients", 10_000, 40),
        size(args, "chats", 2_000, 10),
        size(args, "requests", 300, 10),
    )
    dsn = getattr(args, "postgres", None) or os.environ.get(PG_ENV)
    logging.getLogger("practice").setLevel(logging.WARNING)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_name:
        root = Path(tmp_name)
        config = product_config(root)
        hs = start_homeserver(root, config, product=True)
        try:
            sqlite: tuple[str, dict[str, Any]] = (f"sqlite:{root / 'bridge.db'}", {})
            rows += await measure("SQLite", sqlite, config, hs, sizes)
            if dsn:
                rows += await _on_postgres(dsn, config, hs, sizes)
        finally:
            hs.stop()
    return _side_by_side(rows)


async def _on_postgres(
    dsn: str, config: Config, hs: Homeserver, sizes: tuple[int, int, int]
) -> list[dict[str, Any]]:
    """The PostgreSQL leg, in a schema of its own, dropped afterwards."""
    async with postgres_schema(dsn, "bench") as schema:
        opts = {"min_size": 1, "max_size": 10, "server_settings": {"search_path": schema}}
        return await measure("PostgreSQL", (dsn, opts), config, hs, sizes)


def _side_by_side(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each SQLite row, then PostgreSQL's for the same figure."""
    if not any("PostgreSQL" in str(r["name"]) for r in rows):
        return rows
    half = len(rows) // 2
    out = []
    for a, b in zip(rows[:half], rows[half:], strict=True):
        out += [a, b]
    return out


def main() -> None:
    script_main(__doc__, add_arguments, run, postgres_env=PG_ENV)


if __name__ == "__main__":
    main()
