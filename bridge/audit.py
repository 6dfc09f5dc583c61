"""The audit log: who did what to whom, when. Never message content."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from mautrix.util.async_db import Connection, Database

from bridge.clock import now_ms

log = logging.getLogger("practice.audit")


@dataclass
class AuditEntry:
    id: int
    practice_id: str | None
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]
    ts: int

    def to_json(self) -> dict[str, Any]:
        """Every field, as ``GET /audit`` lists it."""
        return asdict(self)


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        practice_id: str | None,
        actor: str,
        action: str,
        target: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        conn: Connection | None = None,
        effect_key: str | None = None,
    ) -> None:
        """Add a row. With ``effect_key``, a row with the same key is only ever written once."""
        query = (
            "INSERT INTO audit_log (practice_id, actor, action, target, details, ts, effect_key) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (effect_key) DO NOTHING"
        )
        args = (
            practice_id,
            actor,
            action,
            target,
            json.dumps(details or {}),
            now_ms(),
            effect_key,
        )
        await (conn or self.db).execute(query, *args)
        log.info("%s: %s %s", actor, action, target or "")

    async def list(
        self, practice_id: str, *, limit: int = 100, before: int | None = None
    ) -> list[AuditEntry]:
        rows = await self.db.fetch(
            "SELECT * FROM audit_log WHERE practice_id=$1 AND id < $2 ORDER BY id DESC LIMIT $3",
            practice_id,
            before if before is not None else 2**62,
            limit,
        )
        return [
            AuditEntry(
                r["id"],
                r["practice_id"],
                r["actor"],
                r["action"],
                r["target"],
                json.loads(r["details"]),
                r["ts"],
            )
            for r in rows
        ]
