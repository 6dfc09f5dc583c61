"""A fresh database: the latest schema in one step (``latest.sql``) instead of every upgrade
since the first version. It replaces v0 -> v1, which a database at any later version has run."""

from __future__ import annotations

from pathlib import Path

from mautrix.util.async_db import Connection, Scheme

from . import run_script, upgrade_table

LATEST_SQL = Path(__file__).with_name("latest.sql")


async def _version_after(conn: Connection, scheme: Scheme) -> int:
    return len(upgrade_table.upgrades)


async def create_latest(conn: Connection, scheme: Scheme) -> None:
    await run_script(conn, LATEST_SQL.read_text(), scheme)


upgrade_table.register(
    create_latest, index=0, description="The latest schema", upgrades_to=_version_after
)
