"""SQL of bot commands: jobs, private rooms with the bot, pending confirmations."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Connection, Database

from bridge.clock import now_ms
from bridge.db import fetch_in, transaction


@dataclass(frozen=True)
class Job:
    id: int
    event_id: str
    room_id: RoomID
    sender: UserID
    command: str
    args: str


class CommandStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- inside the pipeline's transaction -------------------------------------------------

    @staticmethod
    async def record(
        conn: Connection, event_id: str, room_id: str, sender: str, command: str, args: str
    ) -> None:
        """A command to run once: a redelivered event hits the unique event id."""
        await conn.execute(
            "INSERT INTO bot_command (event_id, room_id, sender, command, args, received_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
            event_id,
            room_id,
            sender,
            command,
            args,
            now_ms(),
        )

    @staticmethod
    async def is_active_staff(conn: Connection, user_id: str) -> bool:
        return bool(
            await conn.fetchval("SELECT 1 FROM staff WHERE user_id=$1 AND active", user_id)
        )

    @staticmethod
    async def is_live_chat(conn: Connection, room_id: str) -> bool:
        return bool(
            await conn.fetchval("SELECT 1 FROM chat WHERE room_id=$1 AND NOT deleted", room_id)
        )

    @staticmethod
    async def private_room_owner(conn: Connection, room_id: str) -> UserID | None:
        value = await conn.fetchval(
            "SELECT user_id FROM bot_private_room WHERE room_id=$1", room_id
        )
        return UserID(value) if value is not None else None

    @staticmethod
    async def forget_private_room(conn: Connection, room_id: str) -> None:
        await conn.execute("DELETE FROM bot_private_room WHERE room_id=$1", room_id)

    # -- the worker --------------------------------------------------------------------------

    async def pending(self, limit: int) -> list[Job]:
        rows = await self.db.fetch(
            "SELECT id, event_id, room_id, sender, command, args FROM bot_command "
            "WHERE done_at IS NULL ORDER BY id LIMIT $1",
            limit,
        )
        return [
            Job(
                int(r["id"]),
                r["event_id"],
                RoomID(r["room_id"]),
                UserID(r["sender"]),
                r["command"],
                r["args"] or "",
            )
            for r in rows
        ]

    async def mark_done(self, job_id: int, outcome: str) -> None:
        """Done, with its outcome; the arguments (names, codes) are not kept."""
        await self.db.execute(
            "UPDATE bot_command SET done_at=$2, outcome=$3, args=NULL WHERE id=$1",
            job_id,
            now_ms(),
            outcome,
        )

    async def committed(self, seqs: list[int]) -> set[int]:
        """Which of these intake events the pipeline has processed (its transaction committed)."""
        rows = await fetch_in(
            self.db,
            "SELECT seq FROM event_queue WHERE processed_at IS NOT NULL AND seq IN ({})",
            seqs,
        )
        return {int(r["seq"]) for r in rows}

    async def prune(self, before_ms: int) -> None:
        await self.db.execute(
            "DELETE FROM bot_command WHERE done_at IS NOT NULL AND done_at < $1", before_ms
        )
        await self.db.execute("DELETE FROM bot_confirmation WHERE expires_at < $1", now_ms())

    # -- private rooms -----------------------------------------------------------------------

    async def private_room(self, user_id: str) -> RoomID | None:
        value = await self.db.fetchval(
            "SELECT room_id FROM bot_private_room WHERE user_id=$1", user_id
        )
        return RoomID(value) if value is not None else None

    async def set_private_room(self, user_id: str, room_id: RoomID) -> None:
        await self.db.execute(
            "INSERT INTO bot_private_room (user_id, room_id, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (user_id) DO UPDATE SET room_id=excluded.room_id, "
            "created_at=excluded.created_at",
            user_id,
            room_id,
            now_ms(),
        )

    async def drop_private_room(self, user_id: str, room_id: RoomID) -> None:
        await self.db.execute(
            "DELETE FROM bot_private_room WHERE user_id=$1 AND room_id=$2", user_id, room_id
        )

    # -- confirmations -----------------------------------------------------------------------

    async def add_confirmation(
        self, user_id: str, code: str, action: str, target: str, expires_at: int
    ) -> None:
        await self.db.execute(
            "INSERT INTO bot_confirmation (user_id, code, action, target, expires_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            user_id,
            code,
            action,
            target,
            expires_at,
        )

    async def take_confirmation(self, user_id: str, code: str, action: str) -> str | None:
        """The target of a pending confirmation, used up; None if unknown or expired."""
        async with transaction(self.db) as conn:
            row = await conn.fetchrow(
                "SELECT target, expires_at FROM bot_confirmation "
                "WHERE user_id=$1 AND code=$2 AND action=$3",
                user_id,
                code,
                action,
            )
            if row is None:
                return None
            await conn.execute(
                "DELETE FROM bot_confirmation WHERE user_id=$1 AND code=$2", user_id, code
            )
        return str(row["target"]) if row["expires_at"] >= now_ms() else None
