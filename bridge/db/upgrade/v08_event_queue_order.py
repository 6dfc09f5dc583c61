"""v8: the intake queue recognises redeliveries by (origin timestamp, event id).

A unique index on the event id alone put every stored event on a random page of the index, so
each transaction of 100 events wrote about 100 index pages and storing slowed as the queue grew.
An event id is a hash over the event, its origin timestamp included, so (origin_ts, event_id)
is just as unique for a redelivery; ordered by time first, new events land at the end of it.
Ephemeral events take their transaction's first-seen time as origin_ts (see EventQueue).

Rows stored before this version get ``origin_ts = -1``: their timestamp is not kept once they
are processed. The queue checks that bucket by event id for as long as such rows remain (they
are pruned with the rest after the retention period).
"""

from mautrix.util.async_db import Connection, Scheme

from . import migration

LEGACY_TS = -1


@migration(8, "Intake queue keyed by origin time and event id")
async def upgrade_v8(conn: Connection, scheme: Scheme) -> None:
    if scheme != Scheme.SQLITE:
        await conn.execute(
            f"ALTER TABLE event_queue ADD COLUMN origin_ts BIGINT NOT NULL DEFAULT {LEGACY_TS}"
        )
        await conn.execute("ALTER TABLE event_queue ALTER COLUMN origin_ts DROP DEFAULT")
        await conn.execute("ALTER TABLE event_queue DROP CONSTRAINT event_queue_event_id_key")
    else:
        # SQLite cannot drop a column's UNIQUE: the table is rebuilt, sequence numbers kept.
        await conn.execute("ALTER TABLE event_queue RENAME TO event_queue_v7")
        await conn.execute("DROP INDEX event_queue_pending_idx")
        await conn.execute("""
            CREATE TABLE event_queue (
                seq          INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id     TEXT NOT NULL,
                origin_ts    BIGINT NOT NULL,
                room_id      TEXT NOT NULL,
                payload      TEXT,
                received_at  BIGINT NOT NULL,
                processed_at BIGINT,
                outcome      TEXT
            )
        """)
        await conn.execute(
            "INSERT INTO event_queue (seq, event_id, origin_ts, room_id, payload, received_at, "
            f"processed_at, outcome) SELECT seq, event_id, {LEGACY_TS}, room_id, payload, "
            "received_at, processed_at, outcome FROM event_queue_v7 ORDER BY seq"
        )
        await conn.execute("DELETE FROM sqlite_sequence WHERE name='event_queue'")
        await conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) "
            "SELECT 'event_queue', seq FROM sqlite_sequence WHERE name='event_queue_v7'"
        )
        await conn.execute("DROP TABLE event_queue_v7")
        await conn.execute(
            "CREATE INDEX event_queue_pending_idx ON event_queue (processed_at, seq)"
        )
    await conn.execute(
        "CREATE UNIQUE INDEX event_queue_dedupe_idx ON event_queue (origin_ts, event_id)"
    )
