"""SQL for settings: per-user settings and the practice's settings with its policy version."""

from __future__ import annotations

import json
from typing import Any

from mautrix.types import RoomID
from mautrix.util.async_db import Database

from bridge.clock import now_ms


class SettingsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def user(self, user_id: str) -> dict[str, Any] | None:
        raw = await self.db.fetchval(
            "SELECT settings FROM user_settings WHERE user_id=$1", user_id
        )
        return json.loads(raw) if raw else None

    async def save_user(self, user_id: str, settings: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO user_settings (user_id, settings, updated_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (user_id) DO UPDATE SET settings=excluded.settings, "
            "updated_at=excluded.updated_at",
            user_id,
            json.dumps(settings),
            now_ms(),
        )

    async def save_practice(
        self, practice_id: str, settings: dict[str, Any], *, policy_changed: bool
    ) -> None:
        """Store the practice's settings; a policy change makes every chat's policy stale."""
        await self.db.execute(
            "UPDATE practice SET settings=$2, updated_at=$3, "
            "policy_version = policy_version + $4 WHERE practice_id=$1",
            practice_id,
            json.dumps(settings),
            now_ms(),
            1 if policy_changed else 0,
        )

    async def stale_policies(
        self, limit: int, practice_id: str | None = None
    ) -> list[tuple[RoomID, int]]:
        """Chats whose policy state is behind their practice's settings: (room, version)."""
        query = (
            "SELECT c.room_id, p.policy_version FROM chat c JOIN practice p "
            "ON p.practice_id=c.practice_id WHERE NOT c.deleted "
            "AND c.policy_version < p.policy_version"
        )
        args: list[Any] = []
        if practice_id is not None:
            query += " AND c.practice_id=$1"
            args.append(practice_id)
        query += f" ORDER BY c.room_id LIMIT {int(limit)}"
        rows = await self.db.fetch(query, *args)
        return [(RoomID(r["room_id"]), int(r["policy_version"])) for r in rows]

    async def count_stale(self, practice_id: str) -> int:
        return int(
            await self.db.fetchval(
                "SELECT count(*) FROM chat c JOIN practice p ON p.practice_id=c.practice_id "
                "WHERE c.practice_id=$1 AND NOT c.deleted AND c.policy_version < p.policy_version",
                practice_id,
            )
        )

    async def mark_policy(self, room_id: str, version: int) -> None:
        await self.db.execute(
            "UPDATE chat SET policy_version=$2 WHERE room_id=$1 AND policy_version < $2",
            room_id,
            version,
        )

    async def current_policy_version(self, practice_id: str) -> int:
        value = await self.db.fetchval(
            "SELECT policy_version FROM practice WHERE practice_id=$1", practice_id
        )
        return int(value or 0)
