"""The two ways a database reaches the latest schema give the same schema.

A fresh database gets ``bridge/db/upgrade/latest.sql`` in one step; a database of the first
version (``tests/schema_v1.sql``) replays every upgrade. Both must end with the same tables,
columns (type, nullability, default, identity), indexes and constraints, on SQLite and on
PostgreSQL: the catalogue of each is read and compared.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mautrix.util.async_db import Connection, Database, Scheme, UpgradeTable

from bridge.db.upgrade import run_script, upgrade_table
from tests.conftest import PG_ENV, backend_params
from tests.postgres import postgres_schema

V1_SQL = Path(__file__).with_name("schema_v1.sql")


@dataclass
class Place:
    """Where one test database lives: a URL and the arguments that open it."""

    url: str
    args: dict[str, Any]

    async def upgrade(self, table: UpgradeTable) -> None:
        db = Database.create(self.url, upgrade_table=table, db_args=dict(self.args))
        await db.start()
        await db.stop()

    async def catalogue(self) -> dict[str, Any]:
        db = Database.create(self.url, db_args=dict(self.args))
        await db.start()
        try:
            if db.scheme == Scheme.SQLITE:
                catalogue = await _sqlite_catalogue(db)
            else:
                catalogue = await _postgres_catalogue(db)
            table = upgrade_table.version_table_name
            catalogue["(version)"] = await db.fetchval(f"SELECT version FROM {table}")
            return catalogue
        finally:
            await db.stop()


@pytest.fixture(params=backend_params())
async def places(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Place]]:
    """Two empty databases on the backend."""
    if request.param == "sqlite":
        yield [Place(f"sqlite:{tmp_path / name}.db", {}) for name in ("fresh", "replayed")]
        return
    dsn = os.environ[PG_ENV]
    async with postgres_schema(dsn) as first, postgres_schema(dsn) as second:
        yield [Place(dsn, {"server_settings": {"search_path": s}}) for s in (first, second)]


def upgrades_up_to(version: int) -> UpgradeTable:
    """The bridge's migrations as they were at ``version``: from nothing to the first version's
    schema, then every upgrade after it up to ``version``, one by one."""
    table = UpgradeTable(
        database_name=upgrade_table.database_name,
        version_table_name=upgrade_table.version_table_name,
    )

    async def create_v1(conn: Connection, scheme: Scheme) -> None:
        await run_script(conn, V1_SQL.read_text(), scheme)

    table.register(create_v1, index=0, description="v1 as first released")
    table.upgrades += upgrade_table.upgrades[1:version]
    return table


async def test_a_fresh_database_has_the_schema_of_one_upgraded_from_the_first_version(
    places: list[Place],
) -> None:
    fresh, replayed = places
    await fresh.upgrade(upgrade_table)
    await replayed.upgrade(upgrades_up_to(1))
    await replayed.upgrade(upgrade_table)
    got, expected = await fresh.catalogue(), await replayed.catalogue()
    # The comparison has something to compare: the newest migration's change is there.
    assert "origin_ts" in _column_names(got, "event_queue")
    assert got["(version)"] == expected["(version)"] == len(upgrade_table.upgrades)
    assert sorted(got) == sorted(expected)
    for table in expected:
        assert got[table] == expected[table], table


def _column_names(catalogue: dict[str, Any], table: str) -> list[str]:
    return [column[0] for column in catalogue[table]["columns"]]


# -- reading the catalogue ------------------------------------------------------------------------


async def _sqlite_catalogue(db: Database) -> dict[str, Any]:
    tables = await db.fetch(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    out: dict[str, Any] = {}
    for table in tables:
        name = table["name"]
        columns = await db.fetch(f"PRAGMA table_info({name})")
        indexes = []
        for index in await db.fetch(f"PRAGMA index_list({name})"):
            info = await db.fetch(f"PRAGMA index_info({index['name']})")
            # Indexes SQLite makes for UNIQUE and PRIMARY KEY are numbered in table order.
            label = index["name"] if index["origin"] == "c" else index["origin"]
            keys = tuple(row["name"] for row in sorted(info, key=lambda row: row["seqno"]))
            indexes.append((label, index["unique"], index["partial"], keys))
        foreign = await db.fetch(f"PRAGMA foreign_key_list({name})")
        out[name] = {
            "columns": sorted(
                (c["name"], c["type"], c["notnull"], c["dflt_value"], c["pk"]) for c in columns
            ),
            "indexes": sorted(indexes),
            "foreign_keys": sorted(
                (f["table"], f["from"], f["to"], f["on_update"], f["on_delete"]) for f in foreign
            ),
            "autoincrement": "AUTOINCREMENT" in table["sql"].upper(),
        }
    return out


async def _postgres_catalogue(db: Database) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in await db.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity, "
        "identity_generation FROM information_schema.columns "
        "WHERE table_schema = current_schema()"
    ):
        table = out.setdefault(
            row["table_name"], {"columns": [], "indexes": [], "constraints": []}
        )
        table["columns"].append(tuple(row.values())[1:])
    for row in await db.fetch(
        "SELECT tablename, indexname, replace(indexdef, current_schema() || '.', '') AS def "
        "FROM pg_indexes WHERE schemaname = current_schema()"
    ):
        out[row["tablename"]]["indexes"].append((row["indexname"], row["def"]))
    for row in await db.fetch(
        "SELECT conrelid::regclass::text AS table_name, conname, contype, "
        "pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE connamespace = current_schema()::regnamespace"
    ):
        out[row["table_name"]]["constraints"].append((row["conname"], row["contype"], row["def"]))
    sequences = await db.fetch(
        "SELECT sequence_name FROM information_schema.sequences "
        "WHERE sequence_schema = current_schema()"
    )
    out["(sequences)"] = {"names": sorted(row["sequence_name"] for row in sequences)}
    for table in out.values():
        for part in table.values():
            part.sort()
    return out
