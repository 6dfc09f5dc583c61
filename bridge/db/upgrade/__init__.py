"""The bridge's schema and its migrations.

A fresh database gets the latest schema in one step (``latest.sql``, through ``latest.py``). An
existing database replays the upgrades after its version: one file per version
(``vNN_name.py``), each registered with :func:`migration`. ``tests/test_migrations.py`` holds
both paths to the same schema on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from mautrix.util.async_db import Connection, Scheme, UpgradeTable

upgrade_table = UpgradeTable(
    database_name="practice-bridge", version_table_name="practice_bridge_version"
)

Upgrade = TypeVar(
    "Upgrade",
    Callable[[Connection, Scheme], Awaitable[None]],
    Callable[[Connection], Awaitable[None]],
)


def migration(version: int, description: str) -> Callable[[Upgrade], Upgrade]:
    """Register the upgrade that brings a database from ``version - 1`` to ``version``."""

    def register(upgrade: Upgrade) -> Upgrade:
        upgrade_table.register(upgrade, index=version - 1, description=description)
        return upgrade

    return register


def serial(scheme: Scheme) -> str:
    """The type of an auto-numbered primary key column."""
    if scheme == Scheme.SQLITE:
        return "INTEGER PRIMARY KEY AUTOINCREMENT"
    return "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"


async def run_script(conn: Connection, script: str, scheme: Scheme) -> None:
    """Each statement of an SQL script (``--`` comment lines, statements ending in ``;``), with
    ``{serial}`` spelled for the database."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    for statement in "\n".join(lines).replace("{serial}", serial(scheme)).split(";"):
        if statement.strip():
            await conn.execute(statement)


# One import per migration; each registers itself on upgrade_table.
from . import (  # noqa: E402,F401
    latest,
    v02_chats,
    v03_bot_commands,
    v04_settings,
    v05_rules,
    v06_notifications,
    v07_message_index,
    v08_event_queue_order,
    v09_chat_message_key,
    v10_app_logins,
    v11_practice_versions,
    v12_change_stamps,
)
