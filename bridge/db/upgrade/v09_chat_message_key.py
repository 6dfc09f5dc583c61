"""v9: on PostgreSQL, the chat message index's primary key gets the name a fresh database gives it.

v7 built the new ``chat_message`` while the old table, renamed, still held the name
``chat_message_pkey``, so the new key became ``chat_message_pkey1``. Named alike on every
database, the key can be named by later migrations.
"""

from mautrix.util.async_db import Connection, Scheme

from . import migration


@migration(9, "Chat message primary key named as on a fresh database")
async def upgrade_v9(conn: Connection, scheme: Scheme) -> None:
    if scheme != Scheme.SQLITE:
        await conn.execute("ALTER INDEX IF EXISTS chat_message_pkey1 RENAME TO chat_message_pkey")
