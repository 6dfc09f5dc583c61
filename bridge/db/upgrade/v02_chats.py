"""v2: chats (rooms the bridge owns), their members, shares and subjects; per-user chat state."""

from mautrix.util.async_db import Connection, Scheme

from . import migration


@migration(2, "Chats and per-user chat state")
async def upgrade_v2(conn: Connection, scheme: Scheme) -> None:
    await conn.execute("""
        CREATE TABLE chat (
            room_id         TEXT PRIMARY KEY,
            practice_id     TEXT NOT NULL REFERENCES practice(practice_id),
            kind            TEXT NOT NULL,
            name            TEXT,
            owner_staff_id  TEXT NOT NULL,
            created_at      BIGINT NOT NULL,
            last_message_ts BIGINT NOT NULL,
            last_sender     TEXT,
            deleted         BOOLEAN NOT NULL DEFAULT false
        )
    """)
    await conn.execute("CREATE INDEX chat_practice_idx ON chat (practice_id, kind)")
    # Who is in the chat, as the practice sees it: staff by staff id, clients by the client
    # record (sub-records included: their primary's account is the Matrix member).
    await conn.execute("""
        CREATE TABLE chat_member (
            room_id     TEXT NOT NULL REFERENCES chat(room_id) ON DELETE CASCADE,
            kind        TEXT NOT NULL,
            member_id   TEXT NOT NULL,
            shared      BOOLEAN NOT NULL DEFAULT false,
            PRIMARY KEY (room_id, kind, member_id)
        )
    """)
    await conn.execute("CREATE INDEX chat_member_member_idx ON chat_member (kind, member_id)")
    # Per-user chat state, mirrored from Matrix account data (the truth) and /sync; read_ts is
    # when the user last read the chat (their receipts, public or private, and their own sends).
    await conn.execute("""
        CREATE TABLE user_chat_state (
            user_id       TEXT NOT NULL,
            room_id       TEXT NOT NULL,
            favourite     BOOLEAN NOT NULL DEFAULT false,
            marked_unread BOOLEAN NOT NULL DEFAULT false,
            hidden_at     BIGINT,
            read_ts       BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, room_id)
        )
    """)
    await conn.execute("""
        CREATE TABLE user_sync (
            user_id    TEXT PRIMARY KEY,
            next_batch TEXT NOT NULL
        )
    """)
