"""Where the end-to-end bench's Synapses and bridge keep their data: SQLite files, or, for the
PostgreSQL leg, a database of its own for each Synapse and a schema for the bridge, all made for
the run and dropped after it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from registration.workers import Backing
from tests.postgres import postgres_schema

# Synapse's pool as its sample config for PostgreSQL has it.
SYNAPSE_POOL = {"cp_min": 5, "cp_max": 10}


class Storage:
    """SQLite files under the run's folder (``dsn`` None), or PostgreSQL at ``dsn``: the
    bridge in ``schema``, each Synapse in a fresh database that ``databases`` drops when it
    closes."""

    def __init__(
        self, root: Path, dsn: str | None, schema: str = "", databases: ExitStack | None = None
    ) -> None:
        self.root = root
        self.dsn = dsn
        self.schema = schema
        self.databases = databases or ExitStack()

    def synapse(self, name: str) -> dict[str, Any] | None:
        """homeserver.yaml settings for one more Synapse (None: its SQLite file)."""
        if self.dsn is None:
            return None
        backing = Backing(postgres=self.dsn)
        database = self.databases.enter_context(backing.fresh_database(f"bench_e2e_{name}"))
        settings = backing.database_settings(database)
        settings["args"].update(SYNAPSE_POOL)
        return {"database": settings}

    def bridge(self) -> dict[str, Any]:
        """The bridge's config keys."""
        if self.dsn is None:
            return {"appservice.database": f"sqlite:{self.root / 'bridge.db'}"}
        server_settings = {"search_path": self.schema}
        return {
            "appservice.database": self.dsn,
            "appservice.database_opts": {
                "min_size": 1,
                "max_size": 10,
                "server_settings": server_settings,
            },
        }

    async def processed(self, room: str) -> int:
        """How many of the room's messages the bridge has in its index."""
        sql = "SELECT count(*) FROM chat_message WHERE room_id = "
        if self.dsn is None:
            with sqlite3.connect(self.root / "bridge.db") as db:
                return int(db.execute(sql + "?", (room,)).fetchone()[0])
        conn = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        try:
            return int(await conn.fetchval(sql + "$1", room))
        finally:
            await conn.close()

    async def wait_processed(self, room: str, sends: int, timeout: float = 60) -> None:
        """The bridge really did its work: every client message of the run is in its index."""
        deadline = time.monotonic() + timeout
        while (done := await self.processed(room)) < sends:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bridge processed {done} of {sends} messages")
            await asyncio.sleep(0.2)


@asynccontextmanager
async def storage(root: Path, dsn: str | None) -> AsyncIterator[Storage]:
    """The run's storage, dropped after it (the Synapses must have stopped by then)."""
    if dsn is None:
        yield Storage(root, None)
        return
    async with postgres_schema(dsn, "bench") as schema:
        with ExitStack() as databases:
            yield Storage(root, dsn, schema, databases)
