"""v3: bot commands as durable jobs, each staff member's private room with the bot, and pending
confirmations (``!pb delete``)."""

from mautrix.util.async_db import Connection, Scheme

from . import migration, serial


@migration(3, "Bot commands, private rooms and confirmations")
async def upgrade_v3(conn: Connection, scheme: Scheme) -> None:
    # One row per command event, written in the pipeline's transaction (the unique event id
    # makes a redelivered event a no-op); a worker runs it after the commit and marks it done.
    # The arguments are dropped once it ran; done rows are pruned with the event queue.
    await conn.execute(f"""
        CREATE TABLE bot_command (
            id          {serial(scheme)},
            event_id    TEXT NOT NULL UNIQUE,
            room_id     TEXT NOT NULL,
            sender      TEXT NOT NULL,
            command     TEXT NOT NULL,
            args        TEXT,
            received_at BIGINT NOT NULL,
            done_at     BIGINT,
            outcome     TEXT
        )
    """)
    await conn.execute("CREATE INDEX bot_command_pending_idx ON bot_command (done_at, id)")
    await conn.execute("""
        CREATE TABLE bot_private_room (
            user_id    TEXT PRIMARY KEY,
            room_id    TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )
    """)
    await conn.execute("CREATE INDEX bot_private_room_room_idx ON bot_private_room (room_id)")
    await conn.execute("""
        CREATE TABLE bot_confirmation (
            user_id    TEXT NOT NULL,
            code       TEXT NOT NULL,
            action     TEXT NOT NULL,
            target     TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            PRIMARY KEY (user_id, code)
        )
    """)
