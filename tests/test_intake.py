"""Appservice intake over real HTTP: authenticated, stored before acknowledged, processed once
and in order per room, across redelivery, storage failure, hostile input and a restart.

Transactions are sent to the bridge's appservice port exactly as Synapse sends them. Handlers
added here write their effects through the pipeline's connection into a table of the test, so
"processed once" is checked against committed effects, not against calls.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from mautrix.errors import MatrixRequestError
from mautrix.util.async_db import Connection, Database

from bridge.app import Bridge
from bridge.events import QueuedEvent
from tests.clients import ApiClient, HomeserverInfo
from tests.conftest import bridge_config

TXN_PATH = "/_matrix/app/v1/transactions/"
LEGACY_TXN_PATH = "/transactions/"
SENDER = "@pb_client_pintake_c1:practice.test"

# What the tests made up, so that a handler can tell it from what the shared Synapse sends.
MADE_UP_ROOMS: set[str] = set()
MADE_UP_EVENTS: set[str] = set()


def made_up(ev: QueuedEvent) -> bool:
    return ev.event_id in MADE_UP_EVENTS or ev.room_id in MADE_UP_ROOMS


def message(room_id: str, n: int, *, sender: str = SENDER) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": room_id,
        "sender": sender,
        "event_id": made_up_id(),
        "origin_server_ts": 1_700_000_000_000 + n,
        "content": {"msgtype": "m.text", "body": f"message {n}"},
        "unsigned": {"age": 12},
    }


def made_up_id() -> str:
    event_id = f"${uuid.uuid4().hex}"
    MADE_UP_EVENTS.add(event_id)
    return event_id


def room() -> str:
    room_id = f"!{uuid.uuid4().hex[:18]}:practice.test"
    MADE_UP_ROOMS.add(room_id)
    return room_id


def txn_id() -> str:
    return f"test-{uuid.uuid4().hex}"


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


class Homeserver:
    """Sends to the bridge what Synapse would, over real HTTP."""

    def __init__(self, bridge: Bridge) -> None:
        self.base = f"http://127.0.0.1:{bridge.config.appservice.port}"
        self.token = bridge.config.appservice.hs_token
        self.session = aiohttp.ClientSession()

    async def aclose(self) -> None:
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = None,
        auth: str | None = "header",
    ) -> Answer:
        token = self.token if token is None else token
        headers: dict[str, str] = {"Content-Type": "application/json"}
        params: dict[str, str] = {}
        if auth == "header":
            headers["Authorization"] = f"Bearer {token}"
        elif auth == "query":
            params["access_token"] = token
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.session.request(
            method, self.base + path, data=data, headers=headers, params=params
        ) as resp:
            text = await resp.text()
            try:
                return Answer(resp.status, json.loads(text))
            except ValueError:
                return Answer(resp.status, text)

    async def send(
        self,
        events: list[dict[str, Any]],
        txn: str | None = None,
        *,
        ephemeral: list[dict[str, Any]] | None = None,
        legacy: bool = False,
        **kwargs: Any,
    ) -> Answer:
        body: dict[str, Any] = {"events": events}
        if ephemeral is not None:
            body["ephemeral"] = ephemeral
        path = (LEGACY_TXN_PATH if legacy else TXN_PATH) + quote(txn or txn_id(), safe="")
        return await self.request("PUT", path, body, **kwargs)


@dataclass
class Effects:
    """A handler that records what it sees and writes one committed row per event."""

    db: Database
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    order: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    seen: asyncio.Queue[QueuedEvent] = field(default_factory=asyncio.Queue)

    async def create_table(self) -> None:
        await self.db.execute(
            "CREATE TABLE test_effect (event_id TEXT NOT NULL, room_id TEXT NOT NULL)"
        )

    async def __call__(self, conn: Connection, ev: QueuedEvent) -> None:
        if not made_up(ev):
            return
        self.calls[ev.event_id] += 1
        self.order[ev.room_id].append(ev.event_id)
        self.seen.put_nowait(ev)
        await conn.execute(
            "INSERT INTO test_effect (event_id, room_id) VALUES ($1, $2)", ev.event_id, ev.room_id
        )

    async def committed(self) -> dict[str, int]:
        rows = await self.db.fetch("SELECT event_id, count(*) AS n FROM test_effect GROUP BY 1")
        return {r["event_id"]: r["n"] for r in rows}


async def queue_rows(db: Database, event_ids: list[str]) -> dict[str, str | None]:
    rows = await db.fetch("SELECT event_id, outcome FROM event_queue")
    wanted = set(event_ids)
    return {r["event_id"]: r["outcome"] for r in rows if r["event_id"] in wanted}


@pytest.fixture
async def hs(bridge: Bridge) -> AsyncIterator[Homeserver]:
    async with aclosing(Homeserver(bridge)) as client:
        yield client


@pytest.fixture
async def effects(bridge: Bridge) -> Effects:
    recorder = Effects(bridge.db)
    await recorder.create_table()
    bridge.pipeline.add_handler(recorder)
    return recorder


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["v1", "legacy"])
async def test_wrong_or_missing_hs_token_is_forbidden_and_nothing_is_stored(
    bridge: Bridge, hs: Homeserver, effects: Effects, legacy: bool
) -> None:
    ev = message(room(), 1)
    wrong = await hs.send([ev], token="not-the-token", legacy=legacy)
    assert (wrong.status, wrong.errcode) == (403, "M_FORBIDDEN")
    wrong_query = await hs.send([ev], token="not-the-token", auth="query", legacy=legacy)
    assert (wrong_query.status, wrong_query.errcode) == (403, "M_FORBIDDEN")
    missing = await hs.send([ev], auth=None, legacy=legacy)
    assert (missing.status, missing.errcode) == (403, "M_FORBIDDEN")
    await bridge.pipeline.wait_idle()
    assert await queue_rows(bridge.db, [ev["event_id"]]) == {}
    assert ev["event_id"] not in effects.calls


@pytest.mark.parametrize("legacy", [False, True], ids=["v1", "legacy"])
@pytest.mark.parametrize("auth", ["header", "query"])
async def test_hs_token_in_header_or_query_is_accepted(
    bridge: Bridge, hs: Homeserver, effects: Effects, legacy: bool, auth: str
) -> None:
    ev = message(room(), 1)
    answer = await hs.send([ev], auth=auth, legacy=legacy)
    assert (answer.status, answer.body) == (200, {})
    await bridge.pipeline.wait_idle()
    assert await effects.committed() == {ev["event_id"]: 1}


async def test_ping_answers_the_right_token_and_refuses_a_wrong_one(
    bridge: Bridge, hs: Homeserver
) -> None:
    ok = await hs.request("POST", "/_matrix/app/v1/ping", {"transaction_id": "t1"})
    assert (ok.status, ok.body) == (200, {})
    wrong = await hs.request("POST", "/_matrix/app/v1/ping", {}, token="nope")
    assert (wrong.status, wrong.errcode) == (403, "M_FORBIDDEN")
    missing = await hs.request("POST", "/_matrix/app/v1/ping", {}, auth=None)
    assert (missing.status, missing.errcode) == (403, "M_FORBIDDEN")
    odd = await hs.request("POST", "/_matrix/app/v1/ping", raw=b"[1, 2]")
    assert odd.status == 200
    # The real Synapse, asked to ping us, gets through with its hs_token (or this raises)...
    await bridge.az.ping_self()
    # ...and is refused once the bridge expects another token.
    real, bridge.az.hs_token = bridge.az.hs_token, "rotated-elsewhere"
    try:
        with pytest.raises(MatrixRequestError):
            await bridge.az.ping_self()
    finally:
        bridge.az.hs_token = real


# --- once ---------------------------------------------------------------------------------------


async def test_redelivered_transaction_is_processed_once(
    bridge: Bridge, hs: Homeserver, effects: Effects
) -> None:
    events = [message(room(), n) for n in range(10)]
    txn = txn_id()
    assert (await hs.send(events, txn)).status == 200
    assert (await hs.send(events, txn)).status == 200
    assert (await hs.send(events, txn, legacy=True)).status == 200
    await bridge.pipeline.wait_idle()
    ids = [ev["event_id"] for ev in events]
    assert await effects.committed() == dict.fromkeys(ids, 1)
    assert dict(effects.calls) == dict.fromkeys(ids, 1)
    assert await queue_rows(bridge.db, ids) == dict.fromkeys(ids, "ok")
    # Redelivered after processing, too.
    assert (await hs.send(events, txn)).status == 200
    await bridge.pipeline.wait_idle()
    assert await effects.committed() == dict.fromkeys(ids, 1)


async def test_concurrent_identical_transactions_are_processed_once(
    bridge: Bridge, hs: Homeserver, effects: Effects
) -> None:
    rooms = [room() for _ in range(3)]
    events = [message(rooms[n % 3], n) for n in range(60)]
    txn = txn_id()
    answers = await asyncio.gather(*(hs.send(events, txn) for _ in range(8)))
    assert [a.status for a in answers] == [200] * 8
    await bridge.pipeline.wait_idle()
    ids = [ev["event_id"] for ev in events]
    assert await effects.committed() == dict.fromkeys(ids, 1)
    assert dict(effects.calls) == dict.fromkeys(ids, 1)
    rows = await bridge.db.fetch("SELECT event_id FROM event_queue")
    assert sorted(r["event_id"] for r in rows if r["event_id"] in set(ids)) == sorted(ids)


async def test_same_event_in_two_transactions_is_processed_once(
    bridge: Bridge, hs: Homeserver, effects: Effects
) -> None:
    r = room()
    shared = message(r, 0)
    first = [shared, message(r, 1)]
    second = [message(r, 2), shared, message(r, 3)]
    answers = await asyncio.gather(hs.send(first), hs.send(second))
    assert [a.status for a in answers] == [200, 200]
    assert (await hs.send([shared])).status == 200
    await bridge.pipeline.wait_idle()
    committed = await effects.committed()
    assert committed == {ev["event_id"]: 1 for ev in first + second}


async def test_ephemeral_events_are_stored_and_a_redelivery_is_dropped(
    bridge: Bridge, hs: Homeserver, effects: Effects
) -> None:
    r = room()
    receipt = {
        "type": "m.receipt",
        "room_id": r,
        "content": {"$e1": {"m.read": {SENDER: {"ts": 1_700_000_000_000}}}},
    }
    typing = {"type": "m.typing", "room_id": r, "content": {"user_ids": [SENDER]}}
    txn = txn_id()
    assert (await hs.send([], txn, ephemeral=[receipt, typing])).status == 200
    assert (await hs.send([], txn, ephemeral=[receipt, typing])).status == 200
    # The same typing notice in a later transaction is a new notice.
    assert (await hs.send([], ephemeral=[typing])).status == 200
    await bridge.pipeline.wait_idle()
    seen = []
    while not effects.seen.empty():
        seen.append(effects.seen.get_nowait())
    assert sorted(ev.payload["type"] for ev in seen) == ["m.receipt", "m.typing", "m.typing"]
    assert all(ev.ephemeral for ev in seen)


# --- order --------------------------------------------------------------------------------------


async def test_each_rooms_events_are_processed_in_order(
    bridge: Bridge, hs: Homeserver, effects: Effects
) -> None:
    rooms = [room() for _ in range(12)]
    events = [message(rooms[n % len(rooms)], n) for n in range(12 * 40)]
    expected: dict[str, list[str]] = defaultdict(list)
    for ev in events:
        expected[ev["room_id"]].append(ev["event_id"])
    for start in range(0, len(events), 100):  # Synapse sends one transaction at a time.
        assert (await hs.send(events[start : start + 100])).status == 200
    await bridge.pipeline.wait_idle()
    assert {r: effects.order[r] for r in rooms} == expected
    assert len(await effects.committed()) == len(events)


async def test_rooms_are_processed_in_parallel(
    bridge: Bridge, hs: Homeserver, effects: Effects, database: Database
) -> None:
    if database.scheme.value.startswith("sqlite"):
        pytest.skip("one SQLite connection: rooms take turns on it")
    slow, fast = room(), room()
    fast_seen = asyncio.Event()

    async def waits_for_the_other_room(conn: Connection, ev: QueuedEvent) -> None:
        if ev.room_id == fast:
            fast_seen.set()
        elif ev.room_id == slow:
            # Only finishes if the fast room is processed while this one is still busy.
            await asyncio.wait_for(fast_seen.wait(), 20)

    bridge.pipeline.add_handler(waits_for_the_other_room)
    events = [message(slow, 0), message(fast, 1)]
    assert (await hs.send(events[:1])).status == 200
    assert (await hs.send(events[1:])).status == 200
    await bridge.pipeline.wait_idle()
    ids = [ev["event_id"] for ev in events]
    assert await queue_rows(bridge.db, ids) == dict.fromkeys(ids, "ok")


# --- stored before acknowledged -----------------------------------------------------------------


async def test_storage_failure_is_not_acknowledged_and_nothing_is_half_written(
    bridge: Bridge, hs: Homeserver, effects: Effects
) -> None:
    events = [message(room(), n) for n in range(5)]
    txn = txn_id()
    await bridge.db.execute("ALTER TABLE event_queue RENAME TO event_queue_away")
    try:
        answer = await hs.send(events, txn)
        assert answer.status != 200
        assert answer.status >= 500  # A server problem: Synapse will send it again.
        assert answer.errcode
        txns = await bridge.db.fetch("SELECT txn_id FROM appservice_txn WHERE txn_id=$1", txn)
        assert txns == []  # Not half-written: the transaction row rolled back with the events.
        assert await bridge.db.fetchval("SELECT count(*) FROM event_queue_away") == 0
    finally:
        await bridge.db.execute("ALTER TABLE event_queue_away RENAME TO event_queue")
    # Synapse retries the same transaction: now it is stored and processed, once.
    assert (await hs.send(events, txn)).status == 200
    await bridge.pipeline.wait_idle()
    assert await effects.committed() == {ev["event_id"]: 1 for ev in events}


async def test_stopped_database_is_not_acknowledged(bridge: Bridge, hs: Homeserver) -> None:
    await bridge.pipeline.stop()
    await bridge.db.stop()
    answer = await hs.send([message(room(), 1)])
    assert answer.status == 503
    assert answer.errcode == "M_UNKNOWN"


# --- restart ------------------------------------------------------------------------------------


async def test_restart_mid_stream_neither_loses_nor_repeats_an_event(
    homeserver: HomeserverInfo, database_factory: Any, tmp_path: Path
) -> None:
    rooms = [room() for _ in range(4)]
    events = [message(rooms[n % len(rooms)], n) for n in range(400)]
    ids = [ev["event_id"] for ev in events]
    txns = [(txn_id(), events[i : i + 40]) for i in range(0, len(events), 40)]

    first = Bridge(bridge_config(homeserver, tmp_path), db=database_factory())
    await first.start()
    effects = Effects(first.db)
    await effects.create_table()
    blocked = asyncio.Event()
    never = asyncio.Event()  # the first process stops with work in hand

    async def stalls_after_the_first_transactions(conn: Connection, ev: QueuedEvent) -> None:
        await effects(conn, ev)
        if len(effects.calls) > 120:
            blocked.set()
            await never.wait()

    first.pipeline.add_handler(stalls_after_the_first_transactions)
    hs = Homeserver(first)
    acked: list[int] = []
    delivering: asyncio.Task[None] | None = None

    async def deliver_the_rest() -> None:
        # One at a time, as Synapse does. On SQLite these wait for the stalled worker's
        # connection, so they are still in flight when the bridge begins to stop.
        for i in range(4, len(txns)):
            try:
                answer = await hs.send(txns[i][1], txns[i][0])
            except aiohttp.ClientError:
                return
            if answer.status != 200:
                return
            acked.append(i)

    try:
        for txn, batch in txns[:3]:
            assert (await hs.send(batch, txn)).status == 200
        await first.pipeline.wait_idle()
        assert (await hs.send(txns[3][1], txns[3][0])).status == 200
        await asyncio.wait_for(blocked.wait(), 30)
        delivering = asyncio.create_task(deliver_the_rest())
        await asyncio.sleep(0)
    finally:
        await first.stop()
        if delivering:
            await delivering
        await hs.aclose()

    # Between the two processes: what the first committed, and what it left.
    look = database_factory()
    await look.start()
    try:
        done_before = set(await Effects(look).committed())
        left = await queue_rows(look, ids)
    finally:
        await look.stop()
    unprocessed = {i for i, outcome in left.items() if outcome is None}
    assert unprocessed  # The stop came with events still pending.
    # Effects were committed exactly for the events marked processed.
    assert done_before == {i for i, outcome in left.items() if outcome == "ok"}
    acknowledged = {ev["event_id"] for i in [0, 1, 2, 3, *acked] for ev in txns[i][1]}
    assert acknowledged <= set(left)  # Every acknowledged event was stored.

    second = Bridge(bridge_config(homeserver, tmp_path), db=database_factory())
    after = Effects(second.db)
    second.pipeline.add_handler(after)
    await second.start()
    hs = Homeserver(second)
    try:
        # Synapse sends again what was not acknowledged, and perhaps some that was.
        for i in [1, 4, *(i for i in range(4, len(txns)) if i not in acked)]:
            assert (await hs.send(txns[i][1], txns[i][0])).status == 200
        await second.pipeline.wait_idle()
        assert await after.committed() == dict.fromkeys(ids, 1)
        assert set(after.calls) == set(ids) - done_before
        for r in rooms:
            in_room = [i for i in ids if i in set(after.order[r])]
            assert after.order[r] == in_room  # Resumed in order.
        assert await queue_rows(second.db, ids) == dict.fromkeys(ids, "ok")
    finally:
        await hs.aclose()
        await second.stop()


# --- hostile input ------------------------------------------------------------------------------

HOSTILE_BODIES: list[tuple[str, bytes, int]] = [
    ("not-json", b"this is not json", 400),
    ("not-utf8", b'{"events": ["\xff\xfe"]}', 400),
    ("empty", b"", 400),
    ("array", b"[]", 400),
    ("string", b'"events"', 400),
    ("events-object", b'{"events": {"a": 1}}', 400),
    ("events-string", b'{"events": "x"}', 400),
    ("ephemeral-number", b'{"events": [], "ephemeral": 5}', 400),
    ("deep", b'{"events": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", 400),
    ("huge-number", b'{"events": [{"event_id": "$n", "n": ' + b"9" * 5000 + b"}]}", 400),
    ("items-not-objects", b'{"events": [1, "a", null, [], true]}', 200),
    ("no-events", b'{"ephemeral": []}', 200),
    ("no-event-id", b'{"events": [{"type": "m.room.message", "room_id": "!r:x"}]}', 200),
    ("event-id-number", b'{"events": [{"event_id": 7, "room_id": "!r:x"}]}', 200),
    ("event-id-nul", b'{"events": [{"event_id": "$a\\u0000b", "room_id": "!r:x"}]}', 200),
    ("event-id-surrogate", b'{"events": [{"event_id": "$a\\ud800", "room_id": "!r:x"}]}', 200),
    ("event-id-long", b'{"events": [{"event_id": "$' + b"a" * 400 + b'"}]}', 200),
]


async def test_hostile_transactions_are_refused_or_skipped_and_the_pipeline_lives(
    bridge: Bridge, hs: Homeserver, effects: Effects
) -> None:
    for name, raw, status in HOSTILE_BODIES:
        answer = await hs.request("PUT", TXN_PATH + txn_id(), raw=raw)
        assert answer.status == status, name
        if status != 200:
            assert answer.errcode in ("M_NOT_JSON", "M_BAD_JSON"), name
    huge = b'{"events": [{"event_id": "$big", "pad": "' + b"x" * (33 * 1024 * 1024) + b'"}]}'
    answer = await hs.request("PUT", TXN_PATH + txn_id(), raw=huge)
    assert (answer.status, answer.errcode) == (413, "M_TOO_LARGE")
    answer = await hs.request("PUT", TXN_PATH + "bad%00id", {"events": []})
    assert (answer.status, answer.errcode) == (400, "M_INVALID_PARAM")

    r = room()
    odd = [
        {"event_id": made_up_id(), "room_id": r, "type": "org.example.unknown"},
        {"event_id": made_up_id(), "room_id": 12, "content": "not an object"},
        {"event_id": made_up_id(), "room_id": r, "type": "m.room.message"},
        {"event_id": made_up_id(), "room_id": r, "content": {"body": "\u0000\ud800"}},
    ]
    assert (await hs.send(odd)).status == 200
    good = [message(r, n) for n in range(3)]
    assert (await hs.send(good)).status == 200
    await bridge.pipeline.wait_idle()
    assert await effects.committed() == {ev["event_id"]: 1 for ev in odd + good}
    stored = await bridge.db.fetch("SELECT event_id, room_id FROM event_queue")
    mine = {row["event_id"]: row["room_id"] for row in stored if row["event_id"] in MADE_UP_EVENTS}
    assert mine == {ev["event_id"]: r if ev["room_id"] == r else "" for ev in odd + good}
    assert effects.order[r][-3:] == [ev["event_id"] for ev in good]


async def test_failing_handler_does_not_stop_the_rooms_later_events(
    bridge: Bridge, hs: Homeserver, effects: Effects
) -> None:
    r = room()
    events = [message(r, n) for n in range(10)]
    poison = events[3]["event_id"]

    async def breaks_on_one(conn: Connection, ev: QueuedEvent) -> None:
        if ev.event_id == poison:
            raise ValueError("cannot handle this one")

    bridge.pipeline.add_handler(breaks_on_one)
    assert (await hs.send(events[:6])).status == 200
    assert (await hs.send(events[6:])).status == 200
    await bridge.pipeline.wait_idle()
    ids = [ev["event_id"] for ev in events]
    outcomes = await queue_rows(bridge.db, ids)
    assert outcomes == {i: ("failed:ValueError" if i == poison else "ok") for i in ids}
    # The failed event's effects rolled back with it; every other event's committed once.
    assert await effects.committed() == {i: 1 for i in ids if i != poison}
    # The batch it was in was tried again one event at a time: in order, each last call counts.
    last_calls = list(reversed(dict.fromkeys(reversed(effects.order[r]))))
    assert [i for i in last_calls if i != poison] == [i for i in ids if i != poison]


async def test_lost_database_connection_is_retried_not_marked_failed(
    bridge: Bridge, hs: Homeserver, effects: Effects, database: Database
) -> None:
    if database.scheme.value.startswith("sqlite"):
        pytest.skip("a PostgreSQL server can drop a connection; a SQLite file cannot")
    r = room()
    events = [message(r, n) for n in range(6)]
    target = events[2]["event_id"]
    dropped: list[str] = []

    async def loses_its_connection_once(conn: Connection, ev: QueuedEvent) -> None:
        if ev.event_id == target and not dropped:
            dropped.append(ev.event_id)
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    bridge.pipeline.add_handler(loses_its_connection_once)
    assert (await hs.send(events)).status == 200
    await bridge.pipeline.wait_idle()
    ids = [ev["event_id"] for ev in events]
    assert dropped == [target]
    assert await queue_rows(bridge.db, ids) == dict.fromkeys(ids, "ok")
    assert await effects.committed() == dict.fromkeys(ids, 1)


# --- end to end ---------------------------------------------------------------------------------


async def test_message_from_a_portal_client_reaches_the_pipeline(
    bridge: Bridge, api: ApiClient, practice_id: str
) -> None:
    seen: asyncio.Queue[QueuedEvent] = asyncio.Queue()

    async def watch(conn: Connection, ev: QueuedEvent) -> None:
        seen.put_nowait(ev)

    bridge.pipeline.add_handler(watch)
    await api.setup_practice(practice_id)
    client = await api.session_for(practice_id, client_id="c1")
    room_id = await bridge.az.intent.create_room(invitees=[client.user_id])
    joined = await client.request("POST", f"/_matrix/client/v3/join/{quote(room_id)}", {})
    assert joined.status == 200, joined.body
    sent = await client.send(room_id, {"msgtype": "m.text", "body": "Hello from the portal"})
    assert sent.status == 200, sent.body
    event_id = sent.body["event_id"]

    async def arrival() -> QueuedEvent:
        while True:
            ev = await seen.get()
            if ev.event_id == event_id:
                return ev

    ev = await asyncio.wait_for(arrival(), 60)
    assert ev.room_id == room_id
    assert ev.payload["sender"] == client.user_id
    assert ev.payload["content"]["body"] == "Hello from the portal"
    rows = await queue_rows(bridge.db, [event_id])
    assert rows in ({event_id: None}, {event_id: "ok"})


async def test_batch_handler_sees_every_event_once_in_room_order(
    bridge: Bridge, hs: Homeserver, effects: Effects
) -> None:
    rooms = [room() for _ in range(3)]
    events = [message(rooms[n % 3], n) for n in range(90)]
    poison = events[40]["event_id"]
    batches: list[list[str]] = []

    async def per_batch(conn: Connection, batch: list[QueuedEvent]) -> None:
        mine = [ev for ev in batch if made_up(ev)]
        if any(ev.event_id == poison for ev in mine):
            raise ValueError("one bad event in the batch")
        batches.append([ev.event_id for ev in mine])
        for ev in mine:
            await conn.execute(
                "INSERT INTO test_effect (event_id, room_id) VALUES ($1, $2)",
                ev.event_id,
                "batch",
            )

    bridge.pipeline.add_batch_handler(per_batch)
    for start in range(0, len(events), 30):
        assert (await hs.send(events[start : start + 30])).status == 200
    await bridge.pipeline.wait_idle()
    ids = [ev["event_id"] for ev in events]
    rows = await bridge.db.fetch("SELECT event_id FROM test_effect WHERE room_id='batch'")
    assert sorted(r["event_id"] for r in rows) == sorted(i for i in ids if i != poison)
    seen = [i for batch in batches for i in batch]
    assert sorted(seen) == sorted(i for i in ids if i != poison)  # Once each, committed.
    for r in rooms:
        in_room = [ev["event_id"] for ev in events if ev["room_id"] == r]
        assert [i for i in seen if i in set(in_room)] == [i for i in in_room if i != poison]
    outcomes = await queue_rows(bridge.db, ids)
    assert outcomes[poison] == "failed:ValueError"
