"""v11: ``practice.clients_version`` and ``practice.chats_version``, moved on by every write of
one of the practice's clients, and of one of its chats' kind, name or members: a process that
keeps the practice's client list or a person's contacts in memory knows with one read whether
they are still what the database holds (bridge/directory/store.py, bridge/chats/listing.py)."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import migration


@migration(11, "Versions of each practice's clients and chats")
async def upgrade_v11(conn: Connection) -> None:
    await conn.execute("ALTER TABLE practice ADD COLUMN clients_version BIGINT NOT NULL DEFAULT 0")
    await conn.execute("ALTER TABLE practice ADD COLUMN chats_version BIGINT NOT NULL DEFAULT 0")
