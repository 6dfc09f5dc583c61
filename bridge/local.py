"""`practice-bridge local` (`make run`): a local Synapse and the bridge with one command.

The first run writes everything into the data folder: ``config.yaml`` (the bridge, SQLite in
``bridge.db``), ``registration.yaml``, and ``synapse/homeserver.yaml`` (SQLite, loopback only, no
federation, registration closed, our appservice and module loaded). Later runs reuse them, secrets
included. Synapse runs as a child process (output in ``synapse.log``, pid in ``synapse.pid``);
the bridge runs in this process. SIGINT or SIGTERM stops both, and Synapse is stopped whatever
happens to the bridge.

With ``--workers`` (``make run WORKERS=1``), Synapse runs as the deployment with workers of
``registration.workers`` on PostgreSQL and Redis, behind its router on the same client port;
each process logs to its own file and ``synapse.pid`` lists them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ruamel.yaml import YAML
from yarl import URL

from appservice.messenger import MESSENGER_PATH
from bridge.privacy import SYNAPSE_SETTINGS as PRIVACY_SETTINGS
from config import Config, generate_config, load_config
from registration import generate_registration, module_entries, workers
from registration.homeserver import (
    LocalSynapse,
    free_port,
    read_homeserver_config,
    write_homeserver_config,
)
from registration.processes import ChildProcess, ProcessGroup
from registration.workers import Backing, BackingUnavailable, SynapseWorkers

log = logging.getLogger("practice.local")

DEFAULT_SYNAPSE_PORT = 8008
DEFAULT_BRIDGE_PORT = 29340
SERVER_NAME = "localhost"
HOST = "127.0.0.1"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SYNAPSE_STOP_SECONDS = 30


class LocalError(Exception):
    """A problem the person running `make run` can fix; the message says how."""


class LocalPaths:
    """What the data folder holds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.yaml"
        self.registration = root / "registration.yaml"
        self.synapse_dir = root / "synapse"
        self.homeserver_config = self.synapse_dir / "homeserver.yaml"
        self.synapse_log = root / "synapse.log"
        self.synapse_pid = root / "synapse.pid"


@dataclass
class LocalSetup:
    paths: LocalPaths
    synapse_port: int  # where clients reach Synapse (with workers: the router)
    bridge_port: int
    workers: Backing | None = None  # Synapse with workers, on these services
    notes: list[str] = field(default_factory=list)

    @property
    def synapse_url(self) -> str:
        return f"http://{HOST}:{self.synapse_port}"


# -- first run and later runs ----------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` of the loopback interface right now."""
    with socket.socket() as s:
        # The same option Synapse and aiohttp set, so a port in TIME_WAIT counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _first_run_port(wanted: int | None, default: int, what: str, avoid: set[int]) -> int:
    if wanted is not None:
        if not port_is_free(wanted):
            raise LocalError(f"port {wanted} for {what} is in use; choose another one")
        return wanted
    if default not in avoid and port_is_free(default):
        return default
    port = free_port()
    while port in avoid:
        port = free_port()
    return port


def prepare(
    data_dir: str | os.PathLike[str],
    *,
    synapse_port: int | None = None,
    bridge_port: int | None = None,
    workers: Backing | None = None,
) -> LocalSetup:
    """Generate what the data folder lacks and reuse what it has; return paths and ports.

    Ports given here win (and are written into the configs); otherwise the first run prefers
    8008 for Synapse and 29340 for the bridge and falls back to free ports, and later runs keep
    whatever the configs say. With ``workers``, Synapse runs as several processes on a
    PostgreSQL database of the data folder's own (registration.workers); a data folder is made
    for one way or the other.
    """
    paths = LocalPaths(Path(data_dir).resolve())
    if synapse_port is not None and synapse_port == bridge_port:
        raise LocalError("Synapse and the bridge need different ports")
    paths.root.mkdir(parents=True, exist_ok=True)
    _check_kind(paths, workers)
    if paths.config.exists():
        config = load_config(paths.config)
        setup = LocalSetup(
            paths,
            synapse_port or _port_of(config.homeserver.address),
            bridge_port or config.appservice.port,
            workers,
        )
    else:
        os.chmod(paths.root, 0o700)
        hs = _first_run_port(synapse_port, DEFAULT_SYNAPSE_PORT, "Synapse", set())
        bp = _first_run_port(bridge_port, DEFAULT_BRIDGE_PORT, "the bridge", {hs})
        setup = LocalSetup(paths, hs, bp, workers)
        if synapse_port is None and hs != DEFAULT_SYNAPSE_PORT:
            setup.notes.append(f"Port {DEFAULT_SYNAPSE_PORT} is in use; Synapse gets port {hs}")
        if bridge_port is None and bp != DEFAULT_BRIDGE_PORT:
            setup.notes.append(f"Port {DEFAULT_BRIDGE_PORT} is in use; the bridge gets {bp}")
        config = generate_config(paths.config, **_config_values(setup))
        os.chmod(paths.config, 0o600)
        setup.notes.append(f"Generated {paths.config} with a fresh provisioning secret")
    _sync_config(config, setup)
    if not config.has_tokens or not paths.registration.exists():
        generate_registration(config, paths.registration)
        setup.notes.append(f"Generated {paths.registration} and its tokens")
    if not paths.homeserver_config.exists():
        write_homeserver_config(
            paths.synapse_dir,
            server_name=config.homeserver.domain,
            port=setup.synapse_port,
            registration_path=paths.registration,
            module=module_entries(config, registration_path=paths.registration),
            settings=_workers_settings(setup) if workers else None,
        )
        os.chmod(paths.homeserver_config, 0o600)
        database = "PostgreSQL, with workers" if workers else "SQLite"
        setup.notes.append(
            f"Generated {paths.homeserver_config} ({database}, loopback, no federation)"
        )
    _sync_registration(config, setup)
    _sync_homeserver(config, setup)
    return setup


def _config_values(setup: LocalSetup) -> dict[str, Any]:
    return {
        "homeserver.address": setup.synapse_url,
        "homeserver.domain": SERVER_NAME,
        "appservice.address": f"http://{HOST}:{setup.bridge_port}",
        "appservice.hostname": HOST,
        "appservice.port": setup.bridge_port,
        "appservice.database": f"sqlite:{setup.paths.root / 'bridge.db'}",
    }


def _port_of(url: str) -> int:
    port = URL(url).port
    if port is None:
        raise LocalError(f"cannot tell the port of {url}")
    return port


def _check_kind(paths: LocalPaths, backing: Backing | None) -> None:
    """A data folder serves either one Synapse process or Synapse with workers, not both."""
    if not paths.homeserver_config.exists():
        return
    made_for_workers = workers.is_workers_config(read_homeserver_config(paths.homeserver_config))
    if made_for_workers and backing is None:
        raise LocalError(
            f"{paths.root} holds Synapse with workers; run with --workers (make run WORKERS=1), "
            "or choose another data folder"
        )
    if backing is not None and not made_for_workers:
        raise LocalError(
            f"{paths.root} holds a Synapse of one process on SQLite; Synapse with workers needs "
            "a data folder of its own (make run WORKERS=1 uses data-workers)"
        )


def _workers_settings(setup: LocalSetup) -> dict[str, Any]:
    """The homeserver.yaml keys of the deployment with workers, its database created if
    missing (named after the data folder on the first run, kept afterwards)."""
    assert setup.workers is not None
    paths = setup.paths
    name = "synapse_" + hashlib.sha256(str(paths.root).encode()).hexdigest()[:12]
    if paths.homeserver_config.exists():
        name = read_homeserver_config(paths.homeserver_config)["database"]["args"]["dbname"]
    if not setup.workers.database_exists(name):
        setup.workers.create_database(name)
        setup.notes.append(f"Created the PostgreSQL database {name} for Synapse")
    return workers.configure(
        paths.synapse_dir,
        public_port=setup.synapse_port,
        database=setup.workers.database_settings(name),
        backing=setup.workers,
    )


def _sync_config(config: Config, setup: LocalSetup) -> None:
    """Point the bridge config at the chosen ports (no-op unless they changed)."""
    homeserver, appservice = config.homeserver, config.appservice
    before = (homeserver.address, appservice.address, appservice.port)
    homeserver.address = setup.synapse_url
    appservice.address = f"http://{HOST}:{setup.bridge_port}"
    appservice.port = setup.bridge_port
    if (homeserver.address, appservice.address, appservice.port) != before:
        config.save()
        setup.notes.append(f"Updated the Synapse and bridge addresses in {setup.paths.config}")


def _rewrite_yaml(path: Path, update: Any) -> bool:
    """Load ``path`` round-trip, let ``update`` change it, write it back if anything changed."""
    yaml = YAML()
    with open(path) as f:
        data = yaml.load(f)
    if not update(data):
        return False
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        yaml.dump(data, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True


def _sync_registration(config: Config, setup: LocalSetup) -> None:
    def update(data: Any) -> bool:
        if data.get("url") == config.appservice.address:
            return False
        data["url"] = config.appservice.address
        return True

    if _rewrite_yaml(setup.paths.registration, update):
        setup.notes.append(f"Updated the bridge address in {setup.paths.registration}")


def _sync_homeserver(config: Config, setup: LocalSetup) -> None:
    """Keep Synapse's port, appservice and module entry in step with the bridge config (and,
    with workers, the internal ports and the services)."""

    def update(data: Any) -> bool:
        wanted = {
            "public_baseurl": f"{setup.synapse_url}/",
            "app_service_config_files": [str(setup.paths.registration)],
            "modules": module_entries(config, registration_path=setup.paths.registration),
            **PRIVACY_SETTINGS,
        }
        if setup.workers is not None:
            wanted.update(_workers_settings(setup))
        changed = False
        for key, value in wanted.items():
            if data.get(key) != value:
                data[key] = value
                changed = True
        listener = data["listeners"][0]
        if setup.workers is None and listener.get("port") != setup.synapse_port:
            listener["port"] = setup.synapse_port
            changed = True
        return changed

    if _rewrite_yaml(setup.paths.homeserver_config, update) and setup.workers is None:
        setup.notes.append(
            f"Updated {setup.paths.homeserver_config} to match {setup.paths.config}"
        )


# -- Synapse as a child process ----------------------------------------------------------------


def _command_line(pid: int) -> str | None:
    """The command line of a running process, or None if there is no such process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        pass
    out = subprocess.run(
        ["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or None


def _stop_leftover_synapse(paths: LocalPaths) -> None:
    """Stop the Synapse processes an earlier run left behind (its runner was killed), if any."""
    try:
        pids = [int(line) for line in paths.synapse_pid.read_text().split()]
    except (OSError, ValueError):
        return
    leftover = []
    for pid in pids:
        command = _command_line(pid)
        if command and str(paths.synapse_dir) in command:
            log.warning("Stopping the Synapse process an earlier run left running (pid %d)", pid)
            os.kill(pid, signal.SIGTERM)
            leftover.append(pid)
    deadline = time.monotonic() + _SYNAPSE_STOP_SECONDS
    for pid in leftover:
        while _command_line(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if _command_line(pid) is not None:
            os.kill(pid, signal.SIGKILL)
    paths.synapse_pid.unlink(missing_ok=True)


def _check_ports(setup: LocalSetup) -> None:
    for port, what, flag in (
        (setup.synapse_port, "Synapse", "--synapse-port"),
        (setup.bridge_port, "the bridge", "--bridge-port"),
    ):
        if not port_is_free(port):
            raise LocalError(
                f"port {port} for {what} (kept in {setup.paths.config}) is in use by another "
                f"program; stop that program, or move {what} with `{flag} N`"
            )


# -- signals ---------------------------------------------------------------------------------


class _Interrupted(Exception):
    pass


class _StopSignals:
    """SIGINT/SIGTERM outside the event loop: the first one interrupts, later ones are noted."""

    def __init__(self) -> None:
        self.shutting_down = False

    def install(self) -> None:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.shutting_down:
            log.info("%s received; already stopping", name)
            return
        self.shutting_down = True
        raise _Interrupted(name)


# -- the run ---------------------------------------------------------------------------------


def run_local(
    data_dir: str | os.PathLike[str],
    *,
    demo: bool = False,
    synapse_port: int | None = None,
    bridge_port: int | None = None,
    workers: Backing | None = None,
) -> int:
    """Run a local Synapse (with ``workers``: Synapse with workers on those services) and the
    bridge until SIGINT or SIGTERM; return the exit code."""
    from bridge.cli import setup_logging

    signals = _StopSignals()
    signals.install()
    try:
        if workers is not None:
            try:
                workers.check()
            except BackingUnavailable as e:
                raise LocalError(
                    f"Synapse with workers needs PostgreSQL and Redis: {e}. Start it, or point "
                    "--postgres / --redis at one"
                ) from None
        setup = prepare(
            data_dir, synapse_port=synapse_port, bridge_port=bridge_port, workers=workers
        )
        config = load_config(setup.paths.config)
        setup_logging(config)
        for note in setup.notes:
            log.info("%s", note)
        _stop_leftover_synapse(setup.paths)
        _check_ports(setup)
    except LocalError as e:
        print(f"practice-bridge: {e}", file=sys.stderr)
        return 1
    except _Interrupted:
        return 130
    return _run(config, setup, demo, signals)


def _run(config: Config, setup: LocalSetup, demo: bool, signals: _StopSignals) -> int:
    paths = setup.paths
    synapse: ProcessGroup = (
        SynapseWorkers(paths.synapse_dir, paths.root)
        if setup.workers is not None
        else LocalSynapse(paths.homeserver_config, paths.synapse_log)
    )

    def launched(process: ChildProcess) -> None:
        paths.synapse_pid.write_text("".join(f"{pid}\n" for pid in synapse.pids))
        log.info("%s started (pid %d); waiting for it to answer", process.name, process.pid)

    try:
        log.info("Starting Synapse on %s (log: %s)", setup.synapse_url, paths.synapse_log)
        synapse.start(on_launch=launched)
        return asyncio.run(_serve(config, setup, synapse, demo, signals))
    except _Interrupted as e:
        log.info("%s received; stopping", e)
        return 0
    except RuntimeError as e:
        log.error("%s; see %s", e, paths.synapse_log)
        return 1
    finally:
        signals.shutting_down = True
        synapse.stop(_SYNAPSE_STOP_SECONDS)
        paths.synapse_pid.unlink(missing_ok=True)


async def _serve(
    config: Config,
    setup: LocalSetup,
    synapse: ProcessGroup,
    demo: bool,
    signals: _StopSignals,
) -> int:
    from bridge.app import Bridge

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_synapse(synapse, stop))

    def on_signal(name: str) -> None:
        log.info("%s received; stopping", name)
        watcher.cancel()  # Ctrl-C in a terminal reaches Synapse too; that exit is expected
        stop.set()

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig.name)
    bridge = Bridge(config)
    demo_sessions = None
    if demo:
        from appservice.messenger.demo import DemoSessions

        demo_sessions = DemoSessions()
        demo_sessions.install(bridge.az.app)
    try:
        try:
            started, _ = await _unless_stopped(bridge.start(), stop)
        except Exception as e:
            log.error("The bridge could not start: %s", e, exc_info=True)
            return 1
        if not started:
            return 0
        _announce(config, setup)
        if demo:
            from bridge.demo import format_logins, seed_demo

            try:
                seeding = seed_demo(bridge.directory, bridge.app_logins, bridge.chats)
                _, logins = await _unless_stopped(seeding, stop)
            except Exception as e:
                log.error("Seeding the demo practice failed: %s", e, exc_info=True)
                return 1
            if logins and demo_sessions is not None:
                page = f"http://{HOST}:{setup.bridge_port}{MESSENGER_PATH}/demo.html"
                links = [f"{page}#{demo_sessions.add(x.name, x.mint)}" for x in logins]
                print(format_logins(logins, setup.synapse_url, links), flush=True)
        await stop.wait()
        return 1 if watcher.done() and not watcher.cancelled() else 0
    finally:
        signals.shutting_down = True
        watcher.cancel()
        try:
            await bridge.stop()
        except Exception:
            log.warning("Stopping the bridge did not finish cleanly", exc_info=True)
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        signals.install()
        log.info("Bridge stopped")


async def _unless_stopped(work: Awaitable[Any], stop: asyncio.Event) -> tuple[bool, Any]:
    """Await ``work`` unless ``stop`` is set first; then cancel it. Returns (finished, result)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopped.cancel()
        return True, task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return False, None


async def _watch_synapse(synapse: ProcessGroup, stop: asyncio.Event) -> None:
    # Polling: a thread blocked in wait() would hold up the event loop's shutdown.
    while (ended := synapse.exited()) is None:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    log.error("%s exited with code %s; see %s", ended.name, ended.returncode, ended.log_path)
    stop.set()


def _announce(config: Config, setup: LocalSetup) -> None:
    prefix = config.provisioning.prefix
    log.info("Ready. Ctrl-C stops the bridge and Synapse.")
    log.info(
        "  Synapse client API: %s (server name %s; log %s)",
        setup.synapse_url,
        config.homeserver.domain,
        setup.paths.synapse_log,
    )
    if setup.workers is not None:
        log.info(
            "  Synapse with workers: %s; client API through the router above, each process "
            "logging to %s/synapse-*.log and router.log",
            ", ".join(["main", *(w.name for w in workers.WORKERS)]),
            setup.paths.root,
        )
    log.info("  Provisioning API:   http://%s:%d%s", HOST, setup.bridge_port, prefix)
    log.info("  Messenger:          http://%s:%d%s/", HOST, setup.bridge_port, MESSENGER_PATH)
    log.info(
        "  Shared secret:      key provisioning.shared_secret in %s (Authorization: Bearer ...)",
        setup.paths.config,
    )
