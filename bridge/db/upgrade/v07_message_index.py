"""v7: the chat message index in arrival order.

Keyed by event id, every new message landed on a random page of the index, so each commit wrote
more pages as the index grew and the pipeline slowed with every message ever seen. Keyed by an
ever-growing number, new rows go to the end; the rare lookups by event id (redactions, the
message an automatic reply answers) name the room too and use the (room_id, ts) index.
"""

from mautrix.util.async_db import Connection, Scheme

from . import migration, serial


@migration(7, "Chat message index in arrival order")
async def upgrade_v7(conn: Connection, scheme: Scheme) -> None:
    await conn.execute("ALTER TABLE chat_message RENAME TO chat_message_v6")
    await conn.execute("DROP INDEX chat_message_room_ts_idx")
    await conn.execute(f"""
        CREATE TABLE chat_message (
            id       {serial(scheme)},
            event_id TEXT NOT NULL,
            room_id  TEXT NOT NULL,
            sender   TEXT NOT NULL,
            ts       BIGINT NOT NULL
        )
    """)
    await conn.execute(
        "INSERT INTO chat_message (event_id, room_id, sender, ts) "
        "SELECT event_id, room_id, sender, ts FROM chat_message_v6 ORDER BY ts"
    )
    await conn.execute("DROP TABLE chat_message_v6")
    await conn.execute("CREATE INDEX chat_message_room_ts_idx ON chat_message (room_id, ts)")
