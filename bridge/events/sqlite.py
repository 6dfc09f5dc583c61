"""The connection handlers get on SQLite: every fetch in one trip to SQLite's thread.

mautrix's aiosqlite connection fetches in three trips (execute, fetch, close the cursor), each a
hand-over between the event loop and the connection's thread. Handlers run a few queries per
event inside the pipeline's transaction, so that hand-over is most of their cost. This is the
same connection, in the same transaction, answering the same rows; only the trips are fewer.
"""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Connection, Scheme
from mautrix.util.async_db.aiosqlite import POSITIONAL_PARAM_PATTERN
from mautrix.util.async_db.connection import LoggingConnection


class OneTripConnection(LoggingConnection):
    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        sql = POSITIONAL_PARAM_PATTERN.sub(r"?\1", query)
        return list(await self.wrapped.execute_fetchall(sql, args))

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[column]


def one_trip(conn: Connection) -> Connection:
    """``conn`` itself, or on SQLite the same connection fetching in one trip."""
    if conn.scheme != Scheme.SQLITE or not isinstance(conn, LoggingConnection):
        return conn
    return OneTripConnection(conn.scheme, conn.wrapped, conn.log)  # type: ignore[arg-type]
