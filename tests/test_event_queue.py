"""The intake queue's storage on both backends: how redeliveries are recognised before and after
migration v8, and the write transaction the intake and the pipeline run in.

These talk to the database directly (no Synapse): what is checked is what is committed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from unittest.mock import patch

import pytest
from mautrix.util.async_db import Database

from bridge.clock import now_ms
from bridge.db import Reads
from bridge.events import EventQueue
from bridge.events.sqlite import write_transaction
from tests.test_migrations import upgrades_up_to

ROOM = "!queue:practice.test"


def event(event_id: str, ts: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "m.room.message",
        "room_id": ROOM,
        "sender": "@someone:practice.test",
        "event_id": event_id,
        "content": {"msgtype": "m.text", "body": "hello"},
    }
    if ts is not None:
        ev["origin_server_ts"] = ts
    return ev


async def ids(db: Database) -> list[str]:
    return [r["event_id"] for r in await db.fetch("SELECT event_id FROM event_queue ORDER BY seq")]


async def test_redelivery_is_recognised_by_event_id_whatever_else_it_carries(
    database: Database,
) -> None:
    await database.start()
    queue = EventQueue(database)
    try:
        first = await queue.store_transaction("t1", [event("$a", 5), event("$b", None)], [])
        assert [ev.event_id for ev in first] == ["$a", "$b"]
        # The same events again, in another transaction and in the same one.
        assert await queue.store_transaction("t2", [event("$a", 5), event("$b", None)], []) == []
        assert await queue.store_transaction("t1", [event("$b", None), event("$a", 5)], []) == []
        # Timestamps a database cannot hold, or that are not numbers, are stored all the same.
        odd = [event("$big", 2**70), event("$neg", -3), event("$text", "5"), event("$t", True)]
        assert [ev.event_id for ev in await queue.store_transaction("t3", odd, [])] == [
            "$big",
            "$neg",
            "$text",
            "$t",
        ]
        assert await queue.store_transaction("t4", odd, []) == []
        assert await ids(database) == ["$a", "$b", "$big", "$neg", "$text", "$t"]
    finally:
        await database.stop()


async def test_ephemeral_events_are_recognised_by_their_transaction(database: Database) -> None:
    await database.start()
    queue = EventQueue(database)
    typing = {"type": "m.typing", "room_id": ROOM, "content": {"user_ids": ["@a:x"]}}
    try:
        assert len(await queue.store_transaction("t1", [], [typing])) == 1
        assert await queue.store_transaction("t1", [], [typing]) == []  # redelivered
        assert len(await queue.store_transaction("t2", [], [typing])) == 1  # a new update
        # Redelivered a minute later, t1 is still recognised (by when it was first seen).
        later = now_ms() + 60_000
        with patch("bridge.events.queue.now_ms", return_value=later):
            assert await queue.store_transaction("t1", [], [typing]) == []
            assert len(await queue.store_transaction("t3", [], [typing])) == 1
    finally:
        await database.stop()


async def test_events_stored_before_v8_are_still_recognised_and_numbering_goes_on(
    database_factory: Callable[[], Database],
) -> None:
    old = database_factory()
    old.upgrade_table = upgrades_up_to(7)
    await old.start()
    payload = json.dumps(event("$pending", 3))
    await old.execute(
        "INSERT INTO event_queue (event_id, room_id, payload, received_at, processed_at, outcome) "
        "VALUES ('$done', $1, NULL, 1, 2, 'ok')",
        ROOM,
    )
    await old.execute(
        "INSERT INTO event_queue (event_id, room_id, payload, received_at) VALUES ($1, $2, $3, 1)",
        "$pending",
        ROOM,
        payload,
    )
    await old.execute(
        "INSERT INTO event_queue (event_id, room_id, payload, received_at, processed_at, outcome) "
        "VALUES ('$pruned', $1, NULL, 1, 2, 'ok')",
        ROOM,
    )
    highest = int(await old.fetchval("SELECT max(seq) FROM event_queue"))
    await old.execute("DELETE FROM event_queue WHERE event_id='$pruned'")
    await old.stop()

    db = database_factory()
    await db.start()
    queue = EventQueue(db)
    try:
        # The pending event is still there to be processed, with its payload.
        assert [(ev.event_id, ev.payload) for ev in await queue.pending(10)] == [
            ("$pending", json.loads(payload))
        ]
        # Redelivered after the upgrade, the old events are dropped; a new one is stored, with
        # a number above every number given before (even one whose row was pruned).
        redelivered = [event("$done", 2), event("$pending", 3), event("$new", 4)]
        stored = await queue.store_transaction("t9", redelivered, [])
        assert [ev.event_id for ev in stored] == ["$new"]
        assert stored[0].seq > highest
        # Once the old rows are pruned, the queue stops looking for them.
        await db.execute("UPDATE event_queue SET processed_at=1, outcome='ok'")
        await queue.prune(retention_ms=0)
        assert await ids(db) == []
        assert [ev.event_id for ev in await queue.store_transaction("t10", [event("$x", 1)], [])]
    finally:
        await db.stop()


async def test_write_transaction_commits_or_leaves_nothing(database: Database) -> None:
    await database.start()
    insert = "INSERT INTO appservice_txn (txn_id, received_at) VALUES ($1, 1)"
    try:
        async with write_transaction(database) as conn:
            await conn.execute(insert, "kept")
            assert await conn.fetchval("SELECT count(*) FROM appservice_txn") == 1

        with pytest.raises(RuntimeError):
            async with write_transaction(database) as conn:
                await conn.execute(insert, "failed")
                raise RuntimeError("a handler failed")

        with pytest.raises(Exception, match="UNIQUE|unique"):
            async with write_transaction(database) as conn:
                await conn.execute(insert, "half")
                await conn.execute(insert, "kept")  # breaks the primary key

        started = asyncio.Event()

        async def cut_short() -> None:
            async with write_transaction(database) as conn:
                await conn.execute(insert, "cancelled")
                started.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(cut_short())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        # Only the committed row, and the connection is fit for the next one.
        rows = await database.fetch("SELECT txn_id FROM appservice_txn ORDER BY txn_id")
        assert [r["txn_id"] for r in rows] == ["kept"]
        async with write_transaction(database) as conn:
            await conn.executemany(insert, [("a",), ("b",)])
        assert await database.fetchval("SELECT count(*) FROM appservice_txn") == 3
    finally:
        await database.stop()


async def test_reads_see_what_is_committed_and_what_their_transaction_wrote(
    database: Database,
) -> None:
    """The chat list's reads (statements on the loop on SQLite) answer as the database's own
    fetch does: committed rows, a transaction's own rows inside it, bad SQL refused."""
    await database.start()
    reads = Reads(database)
    insert = "INSERT INTO appservice_txn (txn_id, received_at) VALUES ($1, $2)"
    try:
        assert await reads.fetch("SELECT txn_id FROM appservice_txn") == []
        assert await reads.fetchrow("SELECT txn_id FROM appservice_txn") is None
        assert await reads.fetchval("SELECT txn_id FROM appservice_txn") is None
        await database.execute(insert, "a", 1)
        await database.execute(insert, "b", 2)
        rows = await reads.fetch(
            "SELECT txn_id, received_at FROM appservice_txn WHERE received_at >= $1 "
            "ORDER BY txn_id",
            1,
        )
        assert [(r["txn_id"], r[1]) for r in rows] == [("a", 1), ("b", 2)]
        assert await reads.fetchval("SELECT count(*) FROM appservice_txn") == 2
        row = await reads.fetchrow("SELECT * FROM appservice_txn WHERE txn_id=$1", "b")
        assert row is not None and row["received_at"] == 2

        async with write_transaction(database) as conn:
            await conn.execute(insert, "c", 3)
            # Inside the transaction (its connection): its own row is there already.
            assert await reads.fetchval("SELECT count(*) FROM appservice_txn") == 3
            await conn.execute("DELETE FROM appservice_txn WHERE txn_id='c'")
        with pytest.raises(Exception, match="syntax"):
            await reads.fetch("SELEC txn_id FROM appservice_txn")
        # The connection is fit for the next statement, on the loop or on its thread.
        assert await reads.fetchval("SELECT count(*) FROM appservice_txn") == 2
        assert await database.fetchval("SELECT count(*) FROM appservice_txn") == 2
    finally:
        await database.stop()
