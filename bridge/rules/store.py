"""SQL for the rules enforced after the fact: room policies and the violations to undo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection, Database

from bridge.clock import now_ms
from bridge.rows import dataclass_from_row
from practice_bridge_synapse.policy import Policy


@dataclass
class Violation:
    event_id: str
    room_id: str
    sender: str
    rule: str
    max_length: int | None = None
    target: str | None = None  # the user a client invited
    attempts: int = 0

    @classmethod
    def from_row(cls, row: Any) -> Violation:
        return dataclass_from_row(cls, row)


class RuleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- policies (inside the pipeline's transaction) --------------------------------------

    @staticmethod
    async def policy(conn: Connection, room_id: str) -> tuple[bool, Policy | None]:
        """(known, policy): whether the room's policy was ever seen, and the bot's policy."""
        row = await conn.fetchrow("SELECT content FROM room_policy WHERE room_id=$1", room_id)
        if row is None:
            return False, None
        content = row["content"]
        return True, (Policy.from_content(json.loads(content)) if content is not None else None)

    @staticmethod
    async def save_policy(
        conn: Connection, room_id: str, event_id: str | None, content: dict[str, Any] | None
    ) -> None:
        await conn.execute(
            "INSERT INTO room_policy (room_id, event_id, content) VALUES ($1, $2, $3) "
            "ON CONFLICT (room_id) DO UPDATE SET event_id=excluded.event_id, "
            "content=excluded.content",
            room_id,
            event_id,
            json.dumps(content) if content is not None else None,
        )

    @staticmethod
    async def practice_of(conn: Connection, room_id: str) -> str | None:
        """The practice whose chat the room is, or None for rooms the bridge does not own."""
        value = await conn.fetchval("SELECT practice_id FROM chat WHERE room_id=$1", room_id)
        return str(value) if value is not None else None

    @staticmethod
    async def record(conn: Connection, v: Violation) -> bool:
        """Record a violation once; False when this event was recorded before."""
        inserted = await conn.fetchval(
            "INSERT INTO rule_violation (event_id, room_id, sender, rule, max_length, target,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING 1",
            v.event_id,
            v.room_id,
            v.sender,
            v.rule,
            v.max_length,
            v.target,
            now_ms(),
        )
        return bool(inserted)

    @staticmethod
    async def is_violation(conn: Connection, event_id: str) -> bool:
        """Whether an event broke a rule (other pipeline effects may want to skip it)."""
        return bool(
            await conn.fetchval("SELECT 1 FROM rule_violation WHERE event_id=$1", event_id)
        )

    # -- the worker ------------------------------------------------------------------------

    async def pending(self, limit: int = 100) -> list[Violation]:
        """Violations not done yet whose next attempt is due, oldest first."""
        rows = await self.db.fetch(
            "SELECT event_id, room_id, sender, rule, max_length, target, attempts "
            "FROM rule_violation WHERE done_at IS NULL AND next_try <= $1 "
            "ORDER BY created_at, event_id LIMIT $2",
            now_ms(),
            limit,
        )
        return [Violation.from_row(r) for r in rows]

    async def attempt(self, event_id: str, retry_after_ms: int) -> None:
        """Count an attempt; if it fails, the next one is due after ``retry_after_ms``."""
        await self.db.execute(
            "UPDATE rule_violation SET attempts = attempts + 1, next_try=$2 WHERE event_id=$1",
            event_id,
            now_ms() + retry_after_ms,
        )

    async def done(self, event_id: str, outcome: str) -> None:
        await self.db.execute(
            "UPDATE rule_violation SET done_at=$2, outcome=$3 WHERE event_id=$1",
            event_id,
            now_ms(),
            outcome,
        )

    async def prune(self, retention_ms: int) -> None:
        await self.db.execute(
            "DELETE FROM rule_violation WHERE done_at IS NOT NULL AND done_at < $1",
            now_ms() - retention_ms,
        )
