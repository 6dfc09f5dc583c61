"""v12: a change stamp on each chat's last message and on each user's state of a chat, so a
process that keeps a person's chat list in memory reads only what changed since it last looked
(bridge/chats/stamps.py says how a stamp is given; bridge/chats/kept.py uses them)."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import migration


@migration(12, "Change stamps on chat activity and per-user chat state")
async def upgrade_v12(conn: Connection) -> None:
    await conn.execute("ALTER TABLE chat ADD COLUMN activity_stamp BIGINT NOT NULL DEFAULT 0")
    await conn.execute("CREATE INDEX chat_activity_idx ON chat (practice_id, activity_stamp)")
    await conn.execute("ALTER TABLE user_chat_state ADD COLUMN stamp BIGINT NOT NULL DEFAULT 0")
    await conn.execute(
        "CREATE INDEX user_chat_state_stamp_idx ON user_chat_state (user_id, stamp)"
    )
