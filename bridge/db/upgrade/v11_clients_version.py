"""v11: ``practice.clients_version``, moved on by every write of one of the practice's clients,
so a process that keeps the practice's client list in memory knows with one read whether it is
still the list in the database (bridge/directory/store.py)."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import migration


@migration(11, "A version of each practice's client list")
async def upgrade_v11(conn: Connection) -> None:
    await conn.execute("ALTER TABLE practice ADD COLUMN clients_version BIGINT NOT NULL DEFAULT 0")
