"""Test fixtures: one real Synapse per test session, a fresh bridge (in-process) per test.

Synapse runs as a subprocess from the installed `matrix-synapse` package with our registration
and module loaded, on its own free port and temporary folder, tuned for speed (bcrypt rounds 4,
rate limits off). Every database test runs on SQLite and, when PRACTICE_BRIDGE_TEST_POSTGRES
holds a DSN, on PostgreSQL too (a fresh schema per test).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from mautrix.util.async_db import Database

from bridge.app import Bridge
from bridge.db import create_database
from config import Config, generate_config, load_config
from registration import generate_registration, module_entries
from registration.homeserver import LocalSynapse, free_port
from tests.clients import ApiClient, HomeserverInfo

PG_ENV = "PRACTICE_BRIDGE_TEST_POSTGRES"
OWN_ATTACHMENT_RULES = "smallfiles"


@contextmanager
def synapse_process(
    root: Path, *, with_modules: bool, extra: dict[str, Any] | None = None
) -> Iterator[HomeserverInfo]:
    """A Synapse subprocess on free ports with our registration (and, if asked, our modules),
    tuned for speed; stopped on exit."""
    hs_port, as_port = free_port(), free_port()
    config = generate_config(
        root / "config.yaml",
        **{
            "homeserver.address": f"http://127.0.0.1:{hs_port}",
            "homeserver.domain": "practice.test",
            "appservice.address": f"http://127.0.0.1:{as_port}",
            "appservice.port": as_port,
            "provisioning.token_cache_seconds": 0,
            **(extra or {}),
        },
    )
    generate_registration(config, root / "registration.yaml")
    with LocalSynapse.create(
        root / "synapse",
        server_name="practice.test",
        port=hs_port,
        registration_path=root / "registration.yaml",
        modules=module_entries(config) if with_modules else None,
        log_path=root / "synapse.log",
        fast=True,
    ) as synapse:
        yield HomeserverInfo(synapse.url, "practice.test", root, config, root / "synapse.log")


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeserverInfo]:
    # A practice with attachment rules of its own (tests/test_attachments.py).
    own_rules = {
        f"attachments.practices.{OWN_ATTACHMENT_RULES}": {
            "max_size": 4096,
            "blocked_mimetypes": ["application/zip"],
            "blocked_extensions": ["zip"],
        }
    }
    with synapse_process(
        tmp_path_factory.mktemp("synapse"), with_modules=True, extra=own_rules
    ) as hs:
        yield hs


_BACKEND_ID = re.compile(r"\[(?:[^\]]*-)?(sqlite|postgres)(?:-[^\]]*)?\]$")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How the database tests ended on each backend, so a run shows that both legs ran."""
    counts: Counter[tuple[str, str]] = Counter()
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            found = _BACKEND_ID.search(getattr(report, "nodeid", ""))
            if found and (report.when == "call" or outcome != "passed"):
                counts[found.group(1), outcome] += 1
    for backend in ("sqlite", "postgres"):
        ended = [f"{counts[backend, o]} {o}" for o in ("passed", "failed", "error", "skipped")]
        terminalreporter.write_line(f"database tests on {backend}: " + ", ".join(ended))


def backend_params() -> list[Any]:
    """SQLite always, PostgreSQL when its DSN is set: the backends a database test runs on."""
    return [
        "sqlite",
        pytest.param(
            "postgres",
            marks=pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} is not set"),
        ),
    ]


@pytest.fixture(params=backend_params())
async def database_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], Database]]:
    """Opens the same fresh database as often as asked: one Database per bridge process, so a
    test can stop a bridge and start another on the same data (a restart)."""
    if request.param == "sqlite":
        path = tmp_path / "bridge.db"
        yield lambda: create_database(f"sqlite:{path}")
        return
    dsn = os.environ[PG_ENV]
    async with postgres_schema(dsn) as schema:
        yield lambda: create_database(
            dsn, {"server_settings": {"search_path": schema}, "min_size": 1, "max_size": 5}
        )


@asynccontextmanager
async def postgres_schema(dsn: str) -> AsyncIterator[str]:
    """A fresh schema of its own for a test, dropped afterwards. Made over a plain connection:
    a bridge Database would run the bridge's migrations in the public schema, which every
    branch of the code shares (and a failed start would leave its pool open)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    await _on_postgres(dsn, f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        await _on_postgres(dsn, f"DROP SCHEMA {schema} CASCADE")


async def _on_postgres(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def database(database_factory: Callable[[], Database]) -> Database:
    """A fresh bridge database on each backend (not started: the bridge starts it)."""
    return database_factory()


def bridge_config(homeserver: HomeserverInfo, tmp_path: Path) -> Config:
    path = tmp_path / "config.yaml"
    shutil.copy(homeserver.config.path, path)
    return load_config(path)


@pytest.fixture
async def bridge(
    homeserver: HomeserverInfo, database: Database, tmp_path: Path
) -> AsyncIterator[Bridge]:
    instance = Bridge(bridge_config(homeserver, tmp_path), db=database)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def api(bridge: Bridge, homeserver: HomeserverInfo) -> AsyncIterator[ApiClient]:
    client = ApiClient(bridge.config, homeserver)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def practice_id() -> str:
    """A practice id no other test uses (the Synapse is shared by the whole session)."""
    return f"p{uuid.uuid4().hex[:10]}"
