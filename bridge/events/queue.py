"""SQL of the intake queue: stored before acknowledging, marked when processed.

Redelivered events (the same transaction again, or the same event in another transaction) hit
the unique event id and are dropped. Processed rows keep their id (not their payload) for
``retention_ms`` so that late redeliveries are still recognised; older rows are pruned.

A transaction id seen before does not short-cut storing: its events go through the same unique
event id, so a homeserver that starts counting transaction ids again loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, TypeGuard

from mautrix.util.async_db import Connection, Database, Scheme

from bridge.clock import now_ms
from bridge.db import transaction

from .sqlite import one_trip

RETENTION_MS = 14 * 24 * 3600 * 1000

# Matrix caps identifiers at 255 bytes; anything else cannot be an event we can act on.
_MAX_ID_LENGTH = 255
# SQLite binds at most 32766 parameters in one statement; four per row.
_INSERT_CHUNK = 1000


@dataclass
class QueuedEvent:
    seq: int
    event_id: str
    room_id: str
    payload: dict[str, Any]
    # Set by an earlier handler when the event broke a practice rule and is being undone:
    # later handlers leave it alone (no activity, no auto reply, no email).
    rejected: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.payload.get("_edu"))


def ephemeral_id(txn_id: str, edu: dict[str, Any]) -> str:
    """A stable id for an ephemeral event (they have none), scoped to its transaction.

    A redelivered transaction yields the same ids and is dropped; the same typing or presence
    update in a later transaction is a new event and is kept.
    """
    canonical = json.dumps([txn_id, edu], sort_keys=True, separators=(",", ":"))
    return "edu:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def valid_id(value: Any) -> TypeGuard[str]:
    """A string a database can hold as an identifier: short, no NUL, encodable."""
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_ID_LENGTH or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:  # A lone surrogate from a JSON escape.
        return False
    return True


class EventQueue:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def store_transaction(
        self, txn_id: str, events: list[dict[str, Any]], ephemeral: list[dict[str, Any]]
    ) -> list[QueuedEvent]:
        """Store a transaction's events in one database transaction; return the new ones.

        Events without a usable id are skipped (nothing can be done with them); events already
        stored, by this transaction earlier or by another one, are dropped. The returned events
        carry their sequence numbers, in the order they were delivered.
        """
        now = now_ms()
        fresh: dict[str, tuple[str, str, dict[str, Any]]] = {}
        for ev in events:
            event_id = ev.get("event_id")
            if valid_id(event_id) and event_id not in fresh:
                fresh[event_id] = (_room(ev), json.dumps(ev), ev)
        for edu in ephemeral:
            marked = edu | {"_edu": True}
            fresh.setdefault(ephemeral_id(txn_id, edu), (_room(edu), json.dumps(marked), marked))
        rows = [(event_id, room, text) for event_id, (room, text, _) in fresh.items()]
        records = await self._insert(txn_id, rows, now)
        seqs = {record["event_id"]: int(record["seq"]) for record in records}
        stored = [
            QueuedEvent(seq, event_id, fresh[event_id][0], fresh[event_id][2])
            for event_id, seq in seqs.items()
        ]
        stored.sort(key=lambda ev: ev.seq)
        return stored

    async def _insert(self, txn_id: str, rows: list[tuple[str, str, str]], now: int) -> list[Any]:
        """Insert the transaction and its new events atomically; the new events' seq numbers."""
        txn_sql = (
            "INSERT INTO appservice_txn (txn_id, received_at) VALUES ($1, $2) "
            "ON CONFLICT (txn_id) DO NOTHING"
        )
        if self.db.scheme != Scheme.SQLITE:
            # One statement, so one round trip: atomic without an explicit transaction.
            return await self.db.fetch(
                f"WITH txn AS ({txn_sql}) "
                "INSERT INTO event_queue (event_id, room_id, payload, received_at) "
                "SELECT e, r, p, $2 FROM unnest($3::text[], $4::text[], $5::text[]) "
                "WITH ORDINALITY AS t(e, r, p, o) ORDER BY o "
                "ON CONFLICT (event_id) DO NOTHING RETURNING seq, event_id",
                txn_id,
                now,
                [row[0] for row in rows],
                [row[1] for row in rows],
                [row[2] for row in rows],
            )
        records: list[Any] = []
        async with transaction(self.db) as raw:
            conn = one_trip(raw)
            await conn.execute(txn_sql, txn_id, now)
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start : start + _INSERT_CHUNK]
                values = ", ".join(
                    f"(${i * 3 + 2}, ${i * 3 + 3}, ${i * 3 + 4}, $1)" for i in range(len(chunk))
                )
                records += await conn.fetch(
                    "INSERT INTO event_queue (event_id, room_id, payload, received_at) "
                    f"VALUES {values} ON CONFLICT (event_id) DO NOTHING RETURNING seq, event_id",
                    now,
                    *(value for row in chunk for value in row),
                )
        return records

    async def pending(self, limit: int, after_seq: int = 0) -> list[QueuedEvent]:
        """Unprocessed events with a sequence number above ``after_seq``, oldest first."""
        rows = await self.db.fetch(
            "SELECT seq, event_id, room_id, payload FROM event_queue "
            "WHERE processed_at IS NULL AND seq > $1 ORDER BY seq LIMIT $2",
            after_seq,
            limit,
        )
        return [
            QueuedEvent(r["seq"], r["event_id"], r["room_id"], json.loads(r["payload"]))
            for r in rows
        ]

    async def mark_processed(self, conn: Connection, seqs: list[int], outcome: str = "ok") -> None:
        """Mark events processed (dropping their payload) inside the caller's transaction."""
        if not seqs:
            return
        if self.db.scheme == Scheme.SQLITE:
            placeholders = ", ".join(f"${i + 3}" for i in range(len(seqs)))
            await conn.execute(
                "UPDATE event_queue SET processed_at=$1, outcome=$2, payload=NULL "
                f"WHERE seq IN ({placeholders})",
                now_ms(),
                outcome,
                *seqs,
            )
        else:
            await conn.execute(
                "UPDATE event_queue SET processed_at=$1, outcome=$2, payload=NULL "
                "WHERE seq = ANY($3::bigint[])",
                now_ms(),
                outcome,
                seqs,
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
    return room_id if valid_id(room_id) else ""
