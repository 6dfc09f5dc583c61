"""Statements on SQLite run right on the event loop's thread, on the pool's connection.

mautrix's SQLite connection runs every call on the connection's own thread: a statement is a
hand-over to that thread and back to the event loop (three for a read: execute, fetch, close),
each about 0.1 ms on a small virtual machine and more when the machine is busy, far more than
a short statement itself. The pipeline's write transactions (``bridge.events.sqlite``) and the
reads behind the chat list (``Reads``) run their statements here instead, while they hold the
connection (nothing else can use it meanwhile): they work on SQLite's page cache and are short.
The connection is opened with ``check_same_thread=False`` for this (``create_database``).

On PostgreSQL ``Reads`` is the database's own ``fetch``, ``fetchrow`` and ``fetchval``.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from typing import Any

from mautrix.util.async_db import Connection, Database, Scheme
from mautrix.util.async_db.aiosqlite import POSITIONAL_PARAM_PATTERN


@lru_cache(maxsize=1024)
def sqlite_sql(query: str) -> str:
    """``query`` with SQLite's numbered placeholders, as mautrix's connection would write it;
    remembered, since the same few statements come over and over, some with hundreds of
    placeholders."""
    return POSITIONAL_PARAM_PATTERN.sub(r"?\1", query)


def sqlite_connection(pooled: Any) -> sqlite3.Connection | None:
    """The sqlite3 connection under a pooled mautrix connection (None if it is not one)."""
    # aiosqlite keeps the sqlite3 connection it runs on its thread in ``_connection``.
    raw = getattr(getattr(pooled, "wrapped", None), "_connection", None)
    return raw if isinstance(raw, sqlite3.Connection) else None


class Reads:
    """Reads of ``db``; on SQLite each statement runs on the event loop's thread while it holds
    the connection, in one step with no hand-over. For the short reads a request makes many of
    (the chat list, contacts, who is asking): not for long scans, which would hold the loop."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.scheme = db.scheme

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        if self.scheme != Scheme.SQLITE:
            return list(await self.db.fetch(query, *args))
        pooled: Connection
        async with self.db.acquire() as pooled:
            raw = sqlite_connection(pooled)
            if raw is None:  # Not the aiosqlite connection this was written for.
                return list(await pooled.fetch(query, *args))
            return raw.execute(sqlite_sql(query), args).fetchall()

    async def fetchrow(self, query: str, *args: Any) -> Any:
        if self.scheme != Scheme.SQLITE:
            return await self.db.fetchrow(query, *args)
        pooled: Connection
        async with self.db.acquire() as pooled:
            raw = sqlite_connection(pooled)
            if raw is None:
                return await pooled.fetchrow(query, *args)
            return raw.execute(sqlite_sql(query), args).fetchone()

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[0]
