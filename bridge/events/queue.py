"""SQL of the intake queue: stored before acknowledging, marked when processed.

Redelivered events (the same transaction again, or the same event in another transaction) hit
the unique event id and are dropped. Processed rows keep their id (not their payload) for
``retention_ms`` so that late redeliveries are still recognised; older rows are pruned.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection, Database

from bridge.clock import now_ms
from bridge.db import transaction

RETENTION_MS = 14 * 24 * 3600 * 1000


@dataclass
class QueuedEvent:
    seq: int
    event_id: str
    room_id: str
    payload: dict[str, Any]


def ephemeral_id(edu: dict[str, Any]) -> str:
    """A stable id for an ephemeral event (they have none), so a redelivery is dropped too."""
    digest = hashlib.sha256(json.dumps(edu, sort_keys=True, separators=(",", ":")).encode())
    return "edu:" + digest.hexdigest()[:40]


class EventQueue:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def store_transaction(
        self, txn_id: str, events: list[dict[str, Any]], ephemeral: list[dict[str, Any]]
    ) -> int:
        """Store a transaction's events in one database transaction; return how many it held.

        Returns -1 when the transaction itself was already stored. Events already stored by an
        earlier transaction are dropped here.
        """
        now = now_ms()
        rows: list[tuple[str, str, str, int]] = []
        for ev in events:
            event_id = ev.get("event_id")
            if not isinstance(event_id, str) or not event_id:
                continue  # Not a PDU we can identify: nothing can be done with it.
            rows.append((event_id, _room(ev), json.dumps(ev), now))
        for edu in ephemeral:
            rows.append((ephemeral_id(edu), _room(edu), json.dumps(edu | {"_edu": True}), now))
        async with transaction(self.db) as conn:
            inserted = await conn.fetchval(
                "INSERT INTO appservice_txn (txn_id, received_at) VALUES ($1, $2) "
                "ON CONFLICT (txn_id) DO NOTHING RETURNING 1",
                txn_id,
                now,
            )
            if not inserted:
                return -1
            if rows:
                await conn.executemany(
                    "INSERT INTO event_queue (event_id, room_id, payload, received_at) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
                    rows,
                )
            return len(rows)

    async def pending(self, limit: int) -> list[QueuedEvent]:
        rows = await self.db.fetch(
            "SELECT seq, event_id, room_id, payload FROM event_queue "
            "WHERE processed_at IS NULL ORDER BY seq LIMIT $1",
            limit,
        )
        return [
            QueuedEvent(r["seq"], r["event_id"], r["room_id"], json.loads(r["payload"]))
            for r in rows
        ]

    @staticmethod
    async def mark_processed(conn: Connection, results: list[tuple[int, str]]) -> None:
        """Mark events processed (dropping their payload) inside the caller's transaction."""
        now = now_ms()
        await conn.executemany(
            "UPDATE event_queue SET processed_at=$2, outcome=$3, payload=NULL WHERE seq=$1",
            [(seq, now, outcome) for seq, outcome in results],
        )

    async def unprocessed_count(self) -> int:
        return int(
            await self.db.fetchval("SELECT count(*) FROM event_queue WHERE processed_at IS NULL")
        )

    async def prune(self, retention_ms: int = RETENTION_MS) -> None:
        cutoff = now_ms() - retention_ms
        await self.db.execute(
            "DELETE FROM event_queue WHERE processed_at IS NOT NULL AND processed_at < $1", cutoff
        )
        await self.db.execute("DELETE FROM appservice_txn WHERE received_at < $1", cutoff)


def _room(ev: dict[str, Any]) -> str:
    room_id = ev.get("room_id")
    return room_id if isinstance(room_id, str) else ""
