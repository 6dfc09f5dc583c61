"""Test fixtures: one real Synapse per test session, a fresh bridge (in-process) per test.

Synapse runs as a subprocess from the installed `matrix-synapse` package with our registration
and module loaded, on its own free port and temporary folder, tuned for speed (bcrypt rounds 4,
rate limits off). Every database test runs on SQLite and, when PRACTICE_BRIDGE_TEST_POSTGRES
holds a DSN, on PostgreSQL too (a fresh schema per test).

A test module marked ``pytestmark = pytest.mark.synapse_workers`` runs a second time against
Synapse with workers (registration.workers: PostgreSQL, Redis, a generic worker, an event
persister, a media worker, the appservice notifier, behind the router), started once per
session on a fresh PostgreSQL database of its own. There the bridge runs on PostgreSQL only, as
it does beside such a deployment. Without PostgreSQL (PRACTICE_BRIDGE_TEST_POSTGRES) or Redis
(PRACTICE_BRIDGE_TEST_REDIS, default redis://127.0.0.1:6379) those runs are skipped.

Such a module's tests so run on each Synapse (one process: SQLite; workers: PostgreSQL) and on
each bridge backend; the fourth combination, PostgreSQL beside the one-process Synapse, would
run the same bridge code on the same backend again, so it runs only when the workers leg cannot.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from mautrix.util.async_db import Database

from bridge.app import Bridge
from bridge.db import create_database
from config import Config, generate_config, load_config
from registration import generate_registration, module_entries
from registration.homeserver import LocalSynapse, SynapseSpec, client_listener, free_port
from registration.processes import ProcessGroup
from registration.workers import Backing, BackingUnavailable, SynapseWorkers
from tests.clients import ApiClient, HomeserverInfo
from tests.postgres import PG_ENV, postgres_schema
from tests.synapse_env import synapse_only_environment

REDIS_ENV = "PRACTICE_BRIDGE_TEST_REDIS"
ONE_PROCESS = "one-process"
WORKERS = "workers"
OWN_ATTACHMENT_RULES = "smallfiles"


@contextmanager
def synapse_process(
    root: Path,
    *,
    with_modules: bool,
    extra: dict[str, Any] | None = None,
    backing: Backing | None = None,
    domain: str = "practice.test",
    module_settings: dict[str, Any] | None = None,
    private: bool = True,
    settings: dict[str, Any] | None = None,
    federation: bool = False,
) -> Iterator[HomeserverInfo]:
    """A Synapse on free ports with our registration (and, if asked, our modules), tuned for
    speed; with ``backing``, as a deployment with workers on a database of its own (dropped
    afterwards). Stopped on exit. ``module_settings`` are laid over the rules module's config,
    ``settings`` over homeserver.yaml (one process only); ``federation`` serves federation on
    the client listener; ``private`` False leaves out the settings that keep profiles private."""
    hs_port, as_port = free_port(), free_port()
    config = generate_config(
        root / "config.yaml",
        **{
            "homeserver.address": f"http://127.0.0.1:{hs_port}",
            "homeserver.domain": domain,
            "appservice.address": f"http://127.0.0.1:{as_port}",
            "appservice.port": as_port,
            "provisioning.token_cache_seconds": 0,
            "homeserver.modules": with_modules,
            **(extra or {}),
        },
    )
    generate_registration(config, root / "registration.yaml")
    modules = (
        module_entries(config, registration_path=root / "registration.yaml")
        if with_modules
        else None
    )
    if modules and module_settings:
        modules[0]["config"].update(module_settings)
    spec = SynapseSpec(
        domain, hs_port, root / "registration.yaml", modules, fast=True, private=private
    )
    if federation:
        listener = client_listener(hs_port)
        listener["resources"][0]["names"].append("federation")
        settings = {**(settings or {}), "listeners": [listener]}
    with ExitStack() as stack:
        synapse: ProcessGroup
        workers = None
        if backing is None:
            synapse = LocalSynapse.create(
                root / "synapse", spec, log_path=root / "synapse.log", settings=settings
            )
        else:
            database = stack.enter_context(backing.fresh_database())
            synapse = workers = SynapseWorkers.create(
                root / "synapse", spec, log_dir=root, backing=backing, database=database
            )
        stack.enter_context(synapse)
        url = spec.url
        yield HomeserverInfo(url, domain, root, config, root / "synapse.log", workers)


# A practice with attachment rules of its own (tests/test_attachments.py).
_OWN_RULES = {
    f"attachments.practices.{OWN_ATTACHMENT_RULES}": {
        "max_size": 4096,
        "blocked_mimetypes": ["application/zip"],
        "blocked_extensions": ["zip"],
    }
}


@pytest.fixture(scope="session")
def one_process_homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeserverInfo]:
    with synapse_process(
        tmp_path_factory.mktemp("synapse"), with_modules=True, extra=_OWN_RULES
    ) as hs:
        yield hs


def workers_backing() -> Backing:
    """PostgreSQL and Redis for Synapse with workers; skips the test when either is missing."""
    if not os.environ.get(PG_ENV):
        pytest.skip(f"Synapse with workers needs PostgreSQL: {PG_ENV} is not set")
    backing = Backing(os.environ[PG_ENV], os.environ.get(REDIS_ENV, Backing.redis))
    try:
        backing.check()
    except BackingUnavailable as e:
        pytest.skip(f"Synapse with workers: {e}")
    return backing


def workers_leg_runs() -> bool:
    """Whether the tests against Synapse with workers will run (not be skipped)."""
    try:
        workers_backing()
    except pytest.skip.Exception:
        return False
    return True


@pytest.fixture(scope="session")
def workers_homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeserverInfo]:
    """Synapse with workers, with the same modules and settings as the one-process one; on a
    server name of its own, so that test runs side by side on one Redis never meet."""
    backing = workers_backing()
    with synapse_process(
        tmp_path_factory.mktemp("synapse-workers"),
        with_modules=True,
        extra=_OWN_RULES,
        backing=backing,
        domain=f"workers-{uuid.uuid4().hex[:8]}.test",
    ) as hs:
        yield hs


@pytest.fixture(scope="session")
def synapse_only() -> Iterator[tuple[Path, set[str]]]:
    """A fresh environment with matrix-synapse alone (tests/synapse_env.py): its interpreter
    and the distributions in it."""
    with synapse_only_environment() as env:
        yield env


@pytest.fixture(scope="session")
def homeserver(request: pytest.FixtureRequest) -> HomeserverInfo:
    """The session's Synapse: one process, or, for the second run of a module marked
    ``synapse_workers``, the deployment with workers."""
    workers = getattr(request, "param", ONE_PROCESS) == WORKERS
    homeserver: HomeserverInfo = request.getfixturevalue(
        "workers_homeserver" if workers else "one_process_homeserver"
    )
    return homeserver


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "synapse_workers: run the module's tests against Synapse with workers too"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "homeserver" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "synapse_workers"
    ):
        metafunc.parametrize("homeserver", [ONE_PROCESS, WORKERS], indirect=True, scope="session")


def _twin_key(item: pytest.Item) -> tuple[str, frozenset[tuple[str, Any]]]:
    """The test and its parameters other than the homeserver (a value that is not hashable by
    its identity: each run of a test gets the same parameter objects)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    others = set()
    for name, value in params.items():
        if name != "homeserver":
            try:
                others.add((name, value))
            except TypeError:
                others.add((name, ("id", id(value))))
    return item.nodeid.split("[", 1)[0], frozenset(others)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Beside Synapse with workers the bridge runs on PostgreSQL only (as in production). A
    test that runs there does not run again on PostgreSQL beside the one-process Synapse: the
    workers leg runs its bridge on PostgreSQL, the one-process leg on SQLite."""

    def params(item: pytest.Item) -> dict[str, Any]:
        return getattr(getattr(item, "callspec", None), "params", {})

    on_workers = set()
    if any(params(item).get("homeserver") == WORKERS for item in items) and workers_leg_runs():
        on_workers = {
            _twin_key(item)
            for item in items
            if params(item).get("homeserver") == WORKERS
            and params(item).get("database_factory") == "postgres"
        }
    kept, dropped = [], []
    for item in items:
        leg = params(item).get("homeserver"), params(item).get("database_factory")
        if leg == (WORKERS, "sqlite") or (
            leg == (ONE_PROCESS, "postgres") and _twin_key(item) in on_workers
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


_PARAMS = re.compile(r"\[([^\]]*)\]$")
# Each leg of the suite and the line that says how its tests ended.
_LEGS = {
    "sqlite": "database tests on sqlite",
    "postgres": "database tests on postgres",
    WORKERS: "tests on Synapse with workers",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How the tests of each leg ended (database backends, Synapse with workers), so a run
    shows that every leg ran."""
    counts: Counter[tuple[str, str]] = Counter()
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            found = _PARAMS.search(getattr(report, "nodeid", ""))
            if found and (report.when == "call" or outcome != "passed"):
                for leg in set(found.group(1).split("-")) & _LEGS.keys():
                    counts[leg, outcome] += 1
    for leg, line in _LEGS.items():
        ended = [f"{counts[leg, o]} {o}" for o in ("passed", "failed", "error", "skipped")]
        terminalreporter.write_line(f"{line}: " + ", ".join(ended))


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


@pytest.fixture
def database(database_factory: Callable[[], Database]) -> Database:
    """A fresh bridge database on each backend (not started: the bridge starts it)."""
    return database_factory()


@pytest.fixture
async def two_processes(
    database_factory: Callable[[], Database],
) -> AsyncIterator[tuple[Database, Database]]:
    """The same fresh database opened twice and started, as two bridge processes use it;
    stopped afterwards."""
    one, other = database_factory(), database_factory()
    await one.start()
    await other.start()
    try:
        yield one, other
    finally:
        await one.stop()
        await other.stop()


# Each config text the tests' bridges start from, as load_config read it, and the file's text
# after that read (an upgrade writes the file back): reading and upgrading the YAML takes ten
# times as long as a deep copy, and a bridge starts from such a config in almost every test.
_LOADED: dict[str, tuple[Config, str]] = {}


def bridge_config(homeserver: HomeserverInfo, tmp_path: Path) -> Config:
    """The homeserver's bridge config in a file of the test's own, which the test may change
    and save: what load_config makes of that file (a copy of what it made of the same text)."""
    path = tmp_path / "config.yaml"
    shutil.copy(homeserver.config.path, path)
    text = path.read_text()
    if text not in _LOADED:
        config = load_config(path)
        _LOADED[text] = copy.deepcopy(config), path.read_text()
        return config
    loaded, text_after = _LOADED[text]
    if text_after != text:
        path.write_text(text_after)
    config = copy.deepcopy(loaded)
    config.file.path = str(path)
    return config


@asynccontextmanager
async def running_bridge(
    homeserver: HomeserverInfo, tmp_path: Path, db: Database
) -> AsyncIterator[Bridge]:
    """An in-process bridge on ``db`` (config from ``bridge_config``), stopped afterwards."""
    instance = Bridge(bridge_config(homeserver, tmp_path), db=db)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def bridge(
    homeserver: HomeserverInfo, database: Database, tmp_path: Path
) -> AsyncIterator[Bridge]:
    async with running_bridge(homeserver, tmp_path, database) as instance:
        yield instance


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
