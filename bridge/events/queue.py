"""SQL of the intake queue: stored before acknowledging, marked when processed.

Redelivered events (the same transaction again, or the same event in another transaction) hit
the unique (origin_ts, event_id) pair and are dropped. An event id is a hash over the event, its
origin timestamp included, so the pair is as unique as the id; led by the time, it keeps new
rows at the end of the index instead of on a random page of it (see migration v8). Ephemeral
events have no id or time of their own: their id is derived from their transaction and content,
their time is when the transaction was first seen, so a redelivered transaction yields the same
pairs. Processed rows keep their id (not their payload) for ``retention_ms`` so that late
redeliveries are still recognised; older rows are pruned.

A transaction id seen before does not short-cut storing: its events go through the same unique
pair, so a homeserver that starts counting transaction ids again loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard

from mautrix.util.async_db import Connection, Database, Scheme

from bridge.clock import now_ms
from bridge.db import fetch_in

from .sqlite import write_transaction

RETENTION_MS = 14 * 24 * 3600 * 1000

# Matrix caps identifiers at 255 bytes; anything else cannot be an event we can act on.
_MAX_ID_LENGTH = 255
# SQLite binds at most 32766 parameters in one statement; four per row.
_INSERT_CHUNK = 1000
_MAX_BIGINT = 2**63 - 1
# The origin_ts of rows stored before migration v8, whose timestamps were not kept.
LEGACY_TS = -1
# Payloads as compact JSON. Events come from json.loads, so they cannot be circular; non-ASCII
# stays escaped, so a lone surrogate from a JSON escape is stored as it came.
_dump = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


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


class Batch(list[QueuedEvent]):
    """Events the pipeline processes in one transaction. ``memo`` keeps what batch handlers
    derive from them (the messages, the receipts) so that it is derived once per batch; the
    pipeline clears it before each attempt."""

    def __init__(self, events: Iterable[QueuedEvent] = ()) -> None:
        super().__init__(events)
        self.memo: dict[Any, Any] = {}


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
        self._legacy: bool | None = None  # rows from before v8 remain: unknown until looked

    async def store_transaction(
        self, txn_id: str, events: list[dict[str, Any]], ephemeral: list[dict[str, Any]]
    ) -> list[QueuedEvent]:
        """Store a transaction's events in one database transaction; return the new ones.

        Events without a usable id are skipped (nothing can be done with them); events already
        stored, by this transaction earlier or by another one, are dropped. The returned events
        carry their sequence numbers, in the order they were delivered.
        """
        now = now_ms()
        # event id -> (origin_ts, or None for the transaction's first-seen time; room; JSON; event)
        fresh: dict[str, tuple[int | None, str, str, dict[str, Any]]] = {}
        for ev in events:
            event_id = ev.get("event_id")
            if valid_id(event_id) and event_id not in fresh:
                fresh[event_id] = (origin_ts(ev), _room(ev), _dump(ev), ev)
        for edu in ephemeral:
            marked = edu | {"_edu": True}
            fresh.setdefault(ephemeral_id(txn_id, edu), (None, _room(edu), _dump(marked), marked))
        for event_id in await self._stored_before_v8(list(fresh)):
            del fresh[event_id]
        rows = [(event_id, ts, room, text) for event_id, (ts, room, text, _) in fresh.items()]
        records = await self._insert(txn_id, rows, now)
        seqs = {record["event_id"]: int(record["seq"]) for record in records}
        stored = [
            QueuedEvent(seq, event_id, fresh[event_id][1], fresh[event_id][3])
            for event_id, seq in seqs.items()
        ]
        stored.sort(key=lambda ev: ev.seq)
        return stored

    async def _stored_before_v8(self, event_ids: list[str]) -> list[str]:
        """Which of these ids are rows from before migration v8 (kept under LEGACY_TS)."""
        if self._legacy is None:
            self._legacy = await self._has_legacy_rows()
        if not self._legacy or not event_ids:
            return []
        rows = await fetch_in(
            self.db,
            "SELECT event_id FROM event_queue WHERE origin_ts = $1 AND event_id IN ({})",
            event_ids,
            LEGACY_TS,
        )
        return [row["event_id"] for row in rows]

    async def _has_legacy_rows(self) -> bool:
        row = await self.db.fetchrow(
            "SELECT 1 FROM event_queue WHERE origin_ts = $1 LIMIT 1", LEGACY_TS
        )
        return row is not None

    async def _insert(
        self, txn_id: str, rows: list[tuple[str, int | None, str, str]], now: int
    ) -> list[Any]:
        """Insert the transaction and its new events atomically; the new events' seq numbers.

        A transaction seen before keeps its first-seen time, which is what its ephemeral events
        are keyed by.
        """
        txn_sql = (
            "INSERT INTO appservice_txn (txn_id, received_at) VALUES ($1, $2) "
            "ON CONFLICT (txn_id) DO UPDATE SET txn_id = excluded.txn_id RETURNING received_at"
        )
        if self.db.scheme != Scheme.SQLITE:
            # One statement, so one round trip: atomic without an explicit transaction.
            return await self.db.fetch(
                f"WITH txn AS ({txn_sql}) "
                "INSERT INTO event_queue (event_id, origin_ts, room_id, payload, received_at) "
                "SELECT e, COALESCE(k, (SELECT received_at FROM txn)), r, p, $2 "
                "FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[]) "
                "WITH ORDINALITY AS t(e, k, r, p, o) ORDER BY o "
                "ON CONFLICT (origin_ts, event_id) DO NOTHING RETURNING seq, event_id",
                txn_id,
                now,
                [row[0] for row in rows],
                [row[1] for row in rows],
                [row[2] for row in rows],
                [row[3] for row in rows],
            )
        records: list[Any] = []
        async with write_transaction(self.db) as conn:
            first_seen = await conn.fetchval(txn_sql, txn_id, now)
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start : start + _INSERT_CHUNK]
                values = ", ".join(
                    f"(${i * 4 + 2}, ${i * 4 + 3}, ${i * 4 + 4}, ${i * 4 + 5}, $1)"
                    for i in range(len(chunk))
                )
                records += await conn.fetch(
                    "INSERT INTO event_queue (event_id, origin_ts, room_id, payload, received_at) "
                    f"VALUES {values} ON CONFLICT (origin_ts, event_id) DO NOTHING "
                    "RETURNING seq, event_id",
                    now,
                    *(
                        value
                        for event_id, ts, room, text in chunk
                        for value in (event_id, first_seen if ts is None else ts, room, text)
                    ),
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

    async def oldest_pending(self) -> int | None:
        """When the oldest unprocessed event was stored (ms), if any: one step of an index."""
        value = await self.db.fetchval(
            "SELECT received_at FROM event_queue WHERE processed_at IS NULL ORDER BY seq LIMIT 1"
        )
        return int(value) if value is not None else None

    async def backlog(self) -> tuple[int, int | None]:
        """How many events are unprocessed, and when the oldest of them was stored (ms)."""
        count = await self.db.fetchval(
            "SELECT count(*) FROM event_queue WHERE processed_at IS NULL"
        )
        return int(count), await self.oldest_pending()

    async def prune(self, retention_ms: int = RETENTION_MS) -> None:
        cutoff = now_ms() - retention_ms
        await self.db.execute(
            "DELETE FROM event_queue WHERE processed_at IS NOT NULL AND processed_at < $1", cutoff
        )
        await self.db.execute("DELETE FROM appservice_txn WHERE received_at < $1", cutoff)
        if self._legacy:
            self._legacy = await self._has_legacy_rows()


def origin_ts(ev: dict[str, Any]) -> int:
    """The event's origin_server_ts, or 0 when it has none a database can hold."""
    ts = ev.get("origin_server_ts")
    if isinstance(ts, int) and not isinstance(ts, bool) and 0 <= ts <= _MAX_BIGINT:
        return ts
    return 0


def _room(ev: dict[str, Any]) -> str:
    room_id = ev.get("room_id")
    return room_id if valid_id(room_id) else ""
