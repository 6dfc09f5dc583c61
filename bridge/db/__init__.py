"""The bridge database: one code path for SQLite and PostgreSQL through mautrix.util.async_db."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mautrix.util.async_db import Connection, Database

from .upgrade import upgrade_table


def create_database(url: str, opts: dict[str, Any] | None = None) -> Database:
    """A database for ``url`` (``sqlite:path`` or ``postgres://...``) with our migrations."""
    args = dict(opts or {})
    if url.startswith("sqlite"):
        args = {k: v for k, v in args.items() if k not in ("min_size", "max_size")}
    return Database.create(
        url, upgrade_table=upgrade_table, db_args=args, log=logging.getLogger("practice.db")
    )


@asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[Connection]:
    """A connection inside a database transaction: committed on success, rolled back on error."""
    async with db.acquire() as conn, conn.transaction():  # type: ignore[var-annotated]
        yield conn


__all__ = ["Connection", "Database", "create_database", "transaction"]
