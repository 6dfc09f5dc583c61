"""Synapse with workers on PostgreSQL and Redis, for the tests and `make run WORKERS=1`.

The processes, as Synapse's worker documentation lays them out:

- the main process (``synapse.app.homeserver``): everything not routed elsewhere, the writer of
  every stream but events, background tasks;
- ``client1``, a generic worker: client traffic (sync, rooms, sending events, login);
- ``events1``, the event persister (``stream_writers.events``);
- ``media1``, the media repository (``enable_media_repo: false`` on the others);
- ``appservice1``, which sends transactions to the bridge (``notify_appservices_from_worker``);
- the router (``registration.router``): the one client-facing URL.

Every process reads the same ``homeserver.yaml`` (written by ``write_homeserver_config``, with
the settings below laid over it), so both our modules load in each of them; a worker's own file
(``workers/<name>.yaml``) adds its name, its application and its listener. The processes talk
over Redis and over HTTP replication listeners on the loopback interface. The internal ports are
kept from run to run while they are free.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ruamel.yaml import YAML

from . import router
from .homeserver import SynapseSpec, client_listener, free_port, read_homeserver_config
from .processes import ChildProcess, ProcessGroup

MAIN = "main"
MAIN_REPLICATION = "main_replication"


@dataclass(frozen=True)
class Worker:
    name: str
    app: str
    resources: tuple[str, ...]
    role: str | None  # what the router sends it (registration.router), if anything


CLIENT_WORKER = Worker("client1", "synapse.app.generic_worker", ("client",), router.CLIENT)
EVENT_PERSISTER = Worker("events1", "synapse.app.generic_worker", ("replication",), None)
MEDIA_WORKER = Worker("media1", "synapse.app.media_repository", ("media",), router.MEDIA)
# A client listener only for the appservice ping (see registration.router).
APPSERVICE_WORKER = Worker(
    "appservice1", "synapse.app.generic_worker", ("client",), router.APPSERVICE
)
WORKERS = (CLIENT_WORKER, EVENT_PERSISTER, MEDIA_WORKER, APPSERVICE_WORKER)


class BackingUnavailable(Exception):
    """PostgreSQL or Redis cannot be reached; the message says which, where and why."""


# -- PostgreSQL and Redis --------------------------------------------------------------------


@dataclass(frozen=True)
class Backing:
    """Where the deployment finds its services. ``postgres``: a URL of a PostgreSQL server
    whose user may create databases (its database part is only used to connect);
    ``redis``: ``redis://host:port``."""

    postgres: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis: str = "redis://127.0.0.1:6379"

    @property
    def redis_address(self) -> tuple[str, int]:
        parts = urlsplit(self.redis)
        return parts.hostname or "127.0.0.1", parts.port or 6379

    def check(self) -> None:
        """Raise ``BackingUnavailable`` unless both services answer."""
        host, port = self.redis_address
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                s.sendall(b"PING\r\n")
                answer = s.recv(64)
        except OSError as e:
            raise BackingUnavailable(f"no Redis at {host}:{port} ({e.strerror or e})") from None
        if not answer.startswith(b"+PONG"):
            raise BackingUnavailable(f"Redis at {host}:{port} answered {answer[:40]!r}")
        try:
            self._connect().close()
        except Exception as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            where = urlsplit(self.postgres)
            raise BackingUnavailable(
                f"no PostgreSQL at {where.hostname}:{where.port or 5432} ({first_line})"
            ) from None

    def _connect(self) -> Any:
        import psycopg2

        connection = psycopg2.connect(self.postgres, connect_timeout=3)
        connection.autocommit = True
        return connection

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run one statement outside a transaction; return its first row, if any."""
        connection = self._connect()
        try:
            with connection.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchone() if cur.description else None
        finally:
            connection.close()

    def database_settings(self, name: str, *, fast: bool = False) -> dict[str, Any]:
        """The ``database`` section of homeserver.yaml for database ``name`` on this server;
        ``fast`` (tests) commits without waiting for the disk, as nothing there needs to
        survive a crash of PostgreSQL, and gives each process five connections instead of
        three: with three, a request waits on the pool for tenths of a second (Synapse's log:
        db=(wait/work/count)), with five a small part of that; the five processes then hold
        at most 25 connections."""
        where = urlsplit(self.postgres)
        args: dict[str, Any] = {
            "user": unquote(where.username or "postgres"),
            "host": where.hostname or "127.0.0.1",
            "port": where.port or 5432,
            "dbname": name,
            "cp_min": 1,
            "cp_max": 3,
        }
        if where.password:
            args["password"] = unquote(where.password)
        if fast:
            args["options"] = "-c synchronous_commit=off"
            args["cp_max"] = 5
        return {"name": "psycopg2", "args": args}

    def database_exists(self, name: str) -> bool:
        return self._execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)) is not None

    def create_database(self, name: str) -> None:
        """A fresh database as Synapse requires it (C collation, from template0)."""
        _check_name(name)
        self._execute(
            f'CREATE DATABASE "{name}" '
            "TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        )

    def drop_database(self, name: str) -> None:
        _check_name(name)
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextlib.contextmanager
    def fresh_database(self, prefix: str = "synapse_test") -> Iterator[str]:
        """A new database for one deployment, dropped afterwards; yields its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.create_database(name)
        try:
            yield name
        finally:
            self.drop_database(name)


def _check_name(name: str) -> None:
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"not a database name this deployment makes: {name!r}")


# -- the configuration -----------------------------------------------------------------------


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def internal_ports(synapse_dir: Path) -> dict[str, int]:
    """The ports of the main process's listeners and of each worker: those a previous run
    chose while they are still free, new free ones otherwise."""
    ports: dict[str, int] = {}
    with contextlib.suppress(OSError, KeyError, TypeError, ValueError):
        listeners = read_homeserver_config(synapse_dir / "homeserver.yaml")["listeners"]
        for listener in listeners:
            names = listener["resources"][0]["names"]
            ports[MAIN_REPLICATION if "replication" in names else MAIN] = int(listener["port"])
    for worker in WORKERS:
        with contextlib.suppress(OSError, KeyError, TypeError, ValueError):
            config = read_homeserver_config(_worker_config_path(synapse_dir, worker))
            ports[worker.name] = int(config["worker_listeners"][0]["port"])
    taken: set[int] = set()
    for name in (MAIN, MAIN_REPLICATION, *(w.name for w in WORKERS)):
        port = ports.get(name)
        while port is None or port in taken or not _port_is_free(port):
            port = free_port()
        ports[name] = port
        taken.add(port)
    return ports


def shared_settings(
    *,
    ports: dict[str, int],
    database: dict[str, Any],
    backing: Backing,
    replication_secret: str,
) -> dict[str, Any]:
    """The top-level keys of homeserver.yaml that make the main process one of several."""
    redis_host, redis_port = backing.redis_address
    replication = {
        "port": ports[MAIN_REPLICATION],
        "bind_addresses": ["127.0.0.1"],
        "type": "http",
        "tls": False,
        "resources": [{"names": ["replication"], "compress": False}],
    }
    return {
        "listeners": [client_listener(ports[MAIN], x_forwarded=True), replication],
        "database": database,
        "redis": {"enabled": True, "host": redis_host, "port": redis_port},
        "worker_replication_secret": replication_secret,
        "instance_map": {
            MAIN: {"host": "127.0.0.1", "port": ports[MAIN_REPLICATION]},
            EVENT_PERSISTER.name: {"host": "127.0.0.1", "port": ports[EVENT_PERSISTER.name]},
        },
        "stream_writers": {"events": [EVENT_PERSISTER.name]},
        "notify_appservices_from_worker": APPSERVICE_WORKER.name,
        "enable_media_repo": False,
        "media_instance_running_background_jobs": MEDIA_WORKER.name,
    }


def _worker_config_path(synapse_dir: Path, worker: Worker) -> Path:
    return synapse_dir / "workers" / f"{worker.name}.yaml"


def _router_config_path(synapse_dir: Path) -> Path:
    return synapse_dir / "workers" / "router.yaml"


def write_worker_configs(synapse_dir: Path, *, ports: dict[str, int], public_port: int) -> None:
    """Each worker's own file, and the router's (its port and where each role is served)."""
    folder = synapse_dir / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    yaml = YAML()
    for worker in WORKERS:
        listener = {
            "type": "http",
            "port": ports[worker.name],
            "bind_addresses": ["127.0.0.1"],
            "x_forwarded": True,
            "resources": [{"names": list(worker.resources), "compress": False}],
        }
        config = {
            "worker_app": worker.app,
            "worker_name": worker.name,
            "worker_listeners": [listener],
        }
        with open(_worker_config_path(synapse_dir, worker), "w") as f:
            yaml.dump(config, f)
    upstreams = {router.MAIN: f"http://127.0.0.1:{ports[MAIN]}"}
    for worker in WORKERS:
        if worker.role is not None:
            upstreams[worker.role] = f"http://127.0.0.1:{ports[worker.name]}"
    with open(_router_config_path(synapse_dir), "w") as f:
        yaml.dump({"port": public_port, "upstreams": upstreams}, f)


def configure(
    synapse_dir: Path, *, public_port: int, database: dict[str, Any], backing: Backing
) -> dict[str, Any]:
    """Choose the internal ports, write the workers' and the router's files; return the
    settings to lay over homeserver.yaml (``write_homeserver_config(settings=...)``)."""
    ports = internal_ports(synapse_dir)
    secret = secrets.token_urlsafe(32)
    with contextlib.suppress(OSError, KeyError, TypeError):
        secret = read_homeserver_config(synapse_dir / "homeserver.yaml")[
            "worker_replication_secret"
        ]
    write_worker_configs(synapse_dir, ports=ports, public_port=public_port)
    return shared_settings(
        ports=ports, database=database, backing=backing, replication_secret=secret
    )


def is_workers_config(settings: Any) -> bool:
    """Whether a homeserver.yaml was written for a deployment with workers."""
    return bool(settings.get("notify_appservices_from_worker"))


# -- the processes ---------------------------------------------------------------------------


class SynapseWorkers(ProcessGroup):
    """The main process, then the workers together, then the router; stopped together.

    ``url`` is the client-facing URL (the router); each process logs to ``log_dir``
    (``synapse.log`` for the main process, ``synapse-<worker>.log``, ``router.log``)."""

    def __init__(self, synapse_dir: str | os.PathLike[str], log_dir: str | os.PathLike[str]):
        self.synapse_dir = Path(synapse_dir).resolve()
        self.config_path = self.synapse_dir / "homeserver.yaml"
        settings = read_homeserver_config(self.config_path)
        self.url = settings["public_baseurl"].rstrip("/")
        self.registration_shared_secret = str(settings["registration_shared_secret"])
        logs = Path(log_dir)
        main_port = next(
            listener["port"]
            for listener in settings["listeners"]
            if "client" in listener["resources"][0]["names"]
        )
        main = ChildProcess(
            "Synapse",
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            logs / "synapse.log",
            ready_url=f"http://127.0.0.1:{main_port}/_matrix/client/versions",
        )
        self.workers: dict[str, ChildProcess] = {}
        self.worker_urls: dict[str, str] = {}
        for worker in WORKERS:
            path = _worker_config_path(self.synapse_dir, worker)
            port = read_homeserver_config(path)["worker_listeners"][0]["port"]
            self.worker_urls[worker.name] = f"http://127.0.0.1:{port}"
            argv = [sys.executable, "-m", worker.app, "-c", str(self.config_path), "-c", str(path)]
            self.workers[worker.name] = ChildProcess(
                f"Synapse worker {worker.name}",
                argv,
                logs / f"synapse-{worker.name}.log",
                ready_url=f"http://127.0.0.1:{port}/health",
            )
        front = ChildProcess(
            "Router",
            [
                sys.executable,
                "-m",
                "registration.router",
                str(_router_config_path(self.synapse_dir)),
            ],
            logs / "router.log",
            ready_url=f"{self.url}/_matrix/client/versions",
        )
        self.main = main
        self.router = front
        super().__init__([[main], list(self.workers.values()), [front]])

    @classmethod
    def create(
        cls,
        data_dir: str | os.PathLike[str],
        spec: SynapseSpec,
        *,
        log_dir: str | os.PathLike[str],
        backing: Backing,
        database: str,
    ) -> SynapseWorkers:
        """Write a fresh deployment of ``spec`` into ``data_dir``, on the existing PostgreSQL
        database ``database`` of ``backing``; clients reach it on ``spec.port`` (the router)."""
        synapse_dir = Path(data_dir).resolve()
        settings = configure(
            synapse_dir,
            public_port=spec.port,
            database=backing.database_settings(database, fast=spec.fast),
            backing=backing,
        )
        spec.write(synapse_dir, settings)
        return cls(synapse_dir, log_dir)
