"""The bridge database: one code path for SQLite and PostgreSQL through mautrix.util.async_db."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from mautrix.util.async_db import Connection, Database, Scheme

from .inline import Reads
from .upgrade import upgrade_table


def create_database(url: str, opts: dict[str, Any] | None = None) -> Database:
    """A database for ``url`` (``sqlite:path`` or ``postgres://...``) with our migrations."""
    args = dict(opts or {})
    if url.startswith("sqlite"):
        args = {k: v for k, v in args.items() if k not in ("min_size", "max_size")}
        # The intake and the pipeline run their statements on the event loop's thread while
        # they hold the connection (bridge.events.sqlite); mautrix opens it on its own thread.
        args["check_same_thread"] = False
    else:
        # mautrix would end the process on an asyncpg internal error; the bridge instead
        # treats the database as unavailable for a moment and retries (storage_unavailable).
        args.setdefault("meow_exit_on_ice", False)
    return Database.create(
        url, upgrade_table=upgrade_table, db_args=args, log=logging.getLogger("practice.db")
    )


@asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[Connection]:
    """A connection inside a database transaction: committed on success, rolled back on error."""
    conn: Connection
    async with db.acquire() as conn, conn.transaction():
        yield conn


_IN_CHUNK = 500


async def fetch_in(
    q: Connection | Database, query: str, values: list[Any], *args: Any
) -> list[Any]:
    """Run ``query`` whose ``{}`` is an ``IN (...)`` list of ``values``, in chunks (SQLite binds
    a limited number of parameters); ``args`` are bound first as $1, $2..."""
    rows: list[Any] = []
    for start in range(0, len(values), _IN_CHUNK):
        chunk = values[start : start + _IN_CHUNK]
        marks = ",".join(f"${len(args) + i + 1}" for i in range(len(chunk)))
        rows += await q.fetch(query.format(marks), *args, *chunk)
    return rows


async def fetch_each(
    q: Connection | Database | Reads, query: str, values: list[str], *args: Any
) -> list[Any]:
    """Run ``query`` whose ``{}`` is an ``IN (...)`` list of the texts ``values``, bound as one
    parameter after ``args`` (a JSON array read by ``json_each`` on SQLite, an array on
    PostgreSQL): one statement however long the list, and no placeholder per value to write."""
    mark = f"${len(args) + 1}"
    if q.scheme == Scheme.SQLITE:
        return list(
            await q.fetch(
                query.format(f"SELECT value FROM json_each({mark})"), *args, json.dumps(values)
            )
        )
    return list(await q.fetch(query.format(f"SELECT unnest({mark}::text[])"), *args, values))


# SQLite's primary result codes that describe the database's state, not the statement:
# SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
_SQLITE_STATE_CODES = frozenset({5, 6, 8, 10, 13, 14})


def storage_unavailable(error: BaseException) -> bool:
    """Whether an error says the database cannot be used right now (unreachable, restarting,
    full, read-only) rather than that a statement is wrong: then nothing is to blame but the
    database, and the same work can succeed once it is back."""
    if isinstance(
        error,
        OSError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError
        | asyncpg.exceptions.ReadOnlySQLTransactionError,
    ):
        return True
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_STATE_CODES
        text = str(error)
        return any(
            reason in text
            for reason in ("locked", "disk I/O", "unable to open", "disk is full", "readonly")
        )
    return False


__all__ = [
    "Connection",
    "Database",
    "Reads",
    "create_database",
    "fetch_in",
    "storage_unavailable",
    "transaction",
]
