"""An index of chat messages (who sent what when, never content) for unread counts.

The pipeline adds a row per message in the transaction that processes it and drops it when the
message is redacted. A chat list of 2,000 chats asks only about the chats whose last message is
newer than the user's read mark, with one index range per chat, so it stays fast however long
the chats' histories are.
"""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Connection, Database, Scheme

from bridge.clock import now_ms
from bridge.db import Reads

# Messages older than this leave the index: an unread count covers at most this period.
RETENTION_MS = 180 * 24 * 3600 * 1000
# A badge shows "999+" beyond this; counting stops there.
UNREAD_CAP = 999
_CHUNK = 2000  # SQLite binds at most 32766 parameters in one statement


class MessageIndex:
    def __init__(self, db: Database, bot: str) -> None:
        self.db = db
        self.reads = Reads(db)  # unread counts for the chat list (bridge/db/inline.py)
        self.bot = bot

    @staticmethod
    async def add_many(conn: Connection, messages: list[Any]) -> None:
        """Index messages (each with event_id, room_id, sender, ts). A redelivered message is
        never indexed twice: the pipeline processes each event once."""
        if not messages:
            return
        if conn.scheme == Scheme.SQLITE:
            await conn.executemany(
                "INSERT INTO chat_message (event_id, room_id, sender, ts) VALUES ($1, $2, $3, $4)",
                [(m.event_id, m.room_id, m.sender, m.ts) for m in messages],
            )
        else:  # One statement: PostgreSQL runs an executemany row by row.
            await conn.execute(
                "INSERT INTO chat_message (event_id, room_id, sender, ts) "
                "SELECT e, r, s, ts FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) "
                "WITH ORDINALITY AS t(e, r, s, ts, o) ORDER BY o",
                [m.event_id for m in messages],
                [m.room_id for m in messages],
                [m.sender for m in messages],
                [m.ts for m in messages],
            )

    @staticmethod
    async def remove_many(conn: Connection, redacted: list[tuple[str, str]]) -> None:
        """Drop redacted messages: (room_id, event_id) each."""
        await conn.executemany(
            "DELETE FROM chat_message WHERE room_id=$1 AND event_id=$2", redacted
        )

    @staticmethod
    async def sender_of(conn: Connection, room_id: str, event_id: str) -> str | None:
        value = await conn.fetchval(
            "SELECT sender FROM chat_message WHERE room_id=$1 AND event_id=$2", room_id, event_id
        )
        return str(value) if value is not None else None

    async def unread_counts(self, user_id: str, read_marks: dict[str, int]) -> dict[str, int]:
        """Per chat, how many messages from others arrived after ``read_marks[chat]`` (at most
        ``UNREAD_CAP``).

        Pass only chats that may have unread messages (last message newer than the mark);
        chats left out count as 0. Each chat is one capped range of the (room_id, ts) index,
        so the cost follows the unread messages, never the length of the history.
        """
        count = (
            "SELECT k.room_id, (SELECT count(*) FROM (SELECT 1 FROM chat_message m "
            "WHERE m.room_id = k.room_id AND m.ts > k.ts AND m.sender <> $1 AND m.sender <> $2 "
            f"LIMIT {UNREAD_CAP}) AS unread) AS n FROM {{keys}}"
        )
        counts: dict[str, int] = {}
        items = list(read_marks.items())
        if self.db.scheme != Scheme.SQLITE:
            rows = await self.reads.fetch(
                count.format(keys="unnest($3::text[], $4::bigint[]) AS k(room_id, ts)"),
                user_id,
                self.bot,
                [room for room, _ in items],
                [ts for _, ts in items],
            )
            counts.update((r["room_id"], int(r["n"])) for r in rows)
        else:
            for start in range(0, len(items), _CHUNK):
                chunk = items[start : start + _CHUNK]
                values = ", ".join(f"(${i * 2 + 3}, ${i * 2 + 4})" for i in range(len(chunk)))
                rows = await self.reads.fetch(
                    f"WITH k(room_id, ts) AS (VALUES {values}) " + count.format(keys="k"),
                    user_id,
                    self.bot,
                    *(value for pair in chunk for value in pair),
                )
                counts.update((r["room_id"], int(r["n"])) for r in rows)
        return {room: n for room, n in counts.items() if n}

    async def prune(self, retention_ms: int = RETENTION_MS) -> None:
        await self.db.execute("DELETE FROM chat_message WHERE ts < $1", now_ms() - retention_ms)
        await self.db.execute(
            "DELETE FROM chat_message WHERE room_id IN (SELECT room_id FROM chat WHERE deleted)"
        )
