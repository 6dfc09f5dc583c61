"""v6: the notification outbox, the emails sent from it, and an index of chat messages."""

from mautrix.util.async_db import Connection, Scheme

from . import migration, serial


@migration(6, "Notification outbox and chat message index")
async def upgrade_v6(conn: Connection, scheme: Scheme) -> None:
    # Every message of every chat: who sent it and when, never its content. Unread counts for
    # the chat list come from here, and the writer a reply answers. Pruned after a long time.
    await conn.execute("""
        CREATE TABLE chat_message (
            event_id TEXT PRIMARY KEY,
            room_id  TEXT NOT NULL,
            sender   TEXT NOT NULL,
            ts       BIGINT NOT NULL
        )
    """)
    await conn.execute("CREATE INDEX chat_message_room_ts_idx ON chat_message (room_id, ts)")
    # One email to one recipient about one chat. The Message-ID stays the same across retries;
    # 'sending' means the bridge stopped in the middle of handing it to the mail server.
    await conn.execute(f"""
        CREATE TABLE notification_email (
            id          {serial(scheme)},
            recipient   TEXT NOT NULL,
            room_id     TEXT NOT NULL,
            practice_id TEXT NOT NULL,
            message_id  TEXT NOT NULL,
            status      TEXT NOT NULL,
            attempts    INTEGER NOT NULL DEFAULT 0,
            created_at  BIGINT NOT NULL,
            sent_at     BIGINT,
            error       TEXT
        )
    """)
    await conn.execute(
        "CREATE INDEX notification_email_recipient_idx ON notification_email (recipient, sent_at)"
    )
    # One row per (recipient, message) that may need an email, written in the pipeline's
    # transaction (the unique pair makes a redelivered event a no-op). Status: pending, then
    # sent, read (cancelled by reading), skipped (no longer wanted) or failed.
    await conn.execute(f"""
        CREATE TABLE notification_outbox (
            id         {serial(scheme)},
            recipient  TEXT NOT NULL,
            room_id    TEXT NOT NULL,
            event_id   TEXT NOT NULL,
            sender     TEXT NOT NULL,
            message_ts BIGINT NOT NULL,
            due_at     BIGINT NOT NULL,
            retry_at   BIGINT,
            status     TEXT NOT NULL DEFAULT 'pending',
            email_id   BIGINT,
            done_at    BIGINT,
            UNIQUE (recipient, event_id)
        )
    """)
    await conn.execute(
        "CREATE INDEX notification_outbox_chat_idx "
        "ON notification_outbox (status, recipient, room_id)"
    )
    await conn.execute(
        "CREATE INDEX notification_outbox_event_idx ON notification_outbox (event_id)"
    )
    await conn.execute(
        "CREATE INDEX notification_outbox_done_idx ON notification_outbox (done_at)"
    )
