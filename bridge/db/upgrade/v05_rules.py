"""v5: the practice rules enforced after the fact (when the Synapse module is absent)."""

from mautrix.util.async_db import Connection

from . import migration


@migration(5, "Room policies and rule violations")
async def upgrade_v5(conn: Connection) -> None:
    # The latest policy state the bot sent in each room, as the pipeline saw it in room order;
    # content NULL: the room has no policy from the bot (none, or only a forged one).
    await conn.execute("""
        CREATE TABLE room_policy (
            room_id  TEXT PRIMARY KEY,
            event_id TEXT,
            content  TEXT
        )
    """)
    # One row per offending event, written in the pipeline's transaction (the unique event id
    # makes a redelivered event a no-op); a worker redacts, kicks and explains after the commit
    # and marks it done. Done rows are pruned after the event queue's retention.
    await conn.execute("""
        CREATE TABLE rule_violation (
            event_id   TEXT PRIMARY KEY,
            room_id    TEXT NOT NULL,
            sender     TEXT NOT NULL,
            rule       TEXT NOT NULL,
            max_length INTEGER,
            target     TEXT,
            created_at BIGINT NOT NULL,
            attempts   INTEGER NOT NULL DEFAULT 0,
            next_try   BIGINT NOT NULL DEFAULT 0,
            done_at    BIGINT,
            outcome    TEXT
        )
    """)
    await conn.execute("CREATE INDEX rule_violation_pending_idx ON rule_violation (done_at)")
