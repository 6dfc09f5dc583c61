"""A PostgreSQL schema of its own for a test or a bench run, dropped afterwards.

Made and dropped over a plain connection: a bridge ``Database`` would run the bridge's
migrations in the public schema, which every checkout of the code on a machine shares (and a
failed start would leave its pool open).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

# The environment variable with the PostgreSQL DSN of the tests' and benches' PostgreSQL legs.
PG_ENV = "PRACTICE_BRIDGE_TEST_POSTGRES"


@asynccontextmanager
async def postgres_schema(dsn: str, prefix: str = "test") -> AsyncIterator[str]:
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _execute(dsn, f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        await _execute(dsn, f"DROP SCHEMA {schema} CASCADE")


async def _execute(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
