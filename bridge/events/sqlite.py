"""The write transactions of the intake and the pipeline on SQLite: statements on the loop.

The intake (a transaction's events) and the pipeline (a batch's effects) each run several
statements per transaction; hand-overs to the connection's thread were most of their time. In
``write_transaction`` the statements run on the event loop's thread instead (``bridge.db.inline``
says why and how), on the same connection while this transaction holds it. The commit, which
writes the WAL and now and then checkpoints it (the only step that may wait for the disk),
still goes to the connection's thread: one hand-over per transaction.

On PostgreSQL ``write_transaction`` is the ordinary transaction.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mautrix.util.async_db import Connection, Database, Scheme
from mautrix.util.async_db.aiosqlite import in_transaction
from mautrix.util.async_db.connection import LoggingConnection

from bridge.db import transaction
from bridge.db.inline import sqlite_connection, sqlite_sql

log = logging.getLogger("practice.db")


class InlineConnection(LoggingConnection):
    """A connection whose statements run right here, on the event loop's thread."""

    def __init__(self, pooled: LoggingConnection, raw: sqlite3.Connection) -> None:
        self.raw = raw  # Before the base class freezes the fields.
        super().__init__(pooled.scheme, pooled.wrapped, pooled.log)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return self.raw.execute(sqlite_sql(query), args)

    async def executemany(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return self.raw.executemany(sqlite_sql(query), *args)

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        return self.raw.execute(sqlite_sql(query), args).fetchall()

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return self.raw.execute(sqlite_sql(query), args).fetchone()

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[column]


@asynccontextmanager
async def write_transaction(db: Database) -> AsyncIterator[Connection]:
    """A transaction, committed on success and rolled back on any error or cancellation."""
    if db.scheme != Scheme.SQLITE:
        async with transaction(db) as conn:
            yield conn
        return
    pooled: Connection
    async with db.acquire() as pooled:
        raw = sqlite_connection(pooled)
        if raw is None:  # Not the aiosqlite connection this was written for: the slow way.
            async with pooled.transaction():
                yield pooled
            return
        token = in_transaction.set(True)  # What mautrix checks before opening its own.
        try:
            raw.execute("BEGIN")
            try:
                yield InlineConnection(pooled, raw)
            except BaseException:
                _rollback(raw)
                raise
            await _commit(pooled, raw)
        finally:
            in_transaction.reset(token)


async def _commit(pooled: LoggingConnection, raw: sqlite3.Connection) -> None:
    """Commit on the connection's thread; whatever happens, leave no transaction open and the
    thread done with the connection before anyone uses it on this one again."""
    commit = asyncio.ensure_future(pooled.wrapped.commit())
    try:
        await asyncio.shield(commit)
    except BaseException:
        await asyncio.wait([commit])
        _rollback(raw)
        raise


def _rollback(raw: sqlite3.Connection) -> None:
    if not raw.in_transaction:
        return
    try:
        raw.execute("ROLLBACK")
    except sqlite3.Error as e:
        # SQLite has already rolled back, or the database is gone; the next BEGIN tells.
        log.warning("Rolling back failed (%s)", type(e).__name__)
