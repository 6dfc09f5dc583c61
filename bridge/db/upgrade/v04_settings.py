"""v4: per-user settings, policy versions for resumable propagation, the autoresponder."""

from mautrix.util.async_db import Connection

from . import migration


@migration(4, "Settings, policy propagation and autoresponder")
async def upgrade_v4(conn: Connection) -> None:
    await conn.execute("""
        CREATE TABLE user_settings (
            user_id    TEXT PRIMARY KEY,
            settings   TEXT NOT NULL,
            updated_at BIGINT NOT NULL
        )
    """)
    # A practice-wide change bumps the practice's policy version; every chat whose policy
    # version is behind gets its policy state re-sent (a restart resumes where it stopped).
    await conn.execute("ALTER TABLE practice ADD COLUMN policy_version INTEGER NOT NULL DEFAULT 0")
    await conn.execute("ALTER TABLE chat ADD COLUMN policy_version INTEGER NOT NULL DEFAULT 0")
    # The last automatic reply per chat (at most one per 30 minutes), and the replies to send:
    # written in the same transaction that processes the client's message, sent after commit
    # with a transaction id derived from that message, so a resend is deduplicated.
    await conn.execute("""
        CREATE TABLE autoresponse_window (
            room_id      TEXT PRIMARY KEY,
            last_sent_ts BIGINT NOT NULL
        )
    """)
    await conn.execute("""
        CREATE TABLE autoresponse_job (
            trigger_event_id TEXT PRIMARY KEY,
            room_id          TEXT NOT NULL,
            sender           TEXT NOT NULL,
            message          TEXT NOT NULL,
            created_at       BIGINT NOT NULL,
            sent_event_id    TEXT,
            attempts         INTEGER NOT NULL DEFAULT 0
        )
    """)
