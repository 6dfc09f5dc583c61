"""Faults, each a test: the bridge killed mid-stream, Synapse and PostgreSQL restarted under it,
a full or read-only database.

Everything here is real: the bridge runs as a subprocess (``python -m bridge -c config.yaml run``)
where it is killed with SIGKILL, Synapse and PostgreSQL are private instances of their own where
they are restarted (the session's Synapse and the shared PostgreSQL serve other tests and other
people), and the database faults are SQLite's and PostgreSQL's own (``max_page_count``,
``query_only``, ``default_transaction_read_only``). No test asserts how long anything takes:
each waits for the outcome and checks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest
from mautrix.util.async_db import Database

from bridge.app import Bridge
from bridge.db import create_database
from config import generate_config, load_config
from registration import generate_registration, module_entries
from registration.homeserver import LocalSynapse, SynapseSpec, free_port
from tests.clients import ApiClient, HomeserverInfo, MatrixClient, Reply, eventually
from tests.conftest import PG_ENV, backend_params, bridge_config, running_bridge
from tests.postgres import postgres_schema
from tests.test_notifications import SmtpServer
from tests.test_openapi import contract

AWAY = "Thank you for your message; I am away and will answer soon."
AUTO_REPLY_KEY = "org.practicebridge.auto_reply"
C = contract()


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Practice:
    """A practice whose practitioners each have one client, an autoresponder and a chat."""

    practice_id: str
    clients: dict[str, MatrixClient]  # client id -> session
    rooms: dict[str, str]  # client id -> the 1:1 chat with their practitioner

    @staticmethod
    async def create(api: ApiClient, pairs: int, *, include_content: bool = False) -> Practice:
        practice_id = f"p{uuid.uuid4().hex[:10]}"
        numbers = range(1, pairs + 1)
        await api.setup_practice(
            practice_id,
            clients=tuple(f"c{n}" for n in numbers),
            staff=tuple((f"s{n}", "owner" if n == 1 else "practitioner") for n in numbers),
        )
        clients, rooms = {}, {}
        for n in numbers:
            staff_id, client_id = f"s{n}", f"c{n}"
            staff = await api.session_for(practice_id, staff_id=staff_id)
            settings: dict[str, Any] = {
                "autoresponder": {"enabled": True, "message": AWAY, "periods": []}
            }
            if n == 1 and include_content:
                settings["practice"] = {"email_include_content": {"staff": True}}
            await api.ok("PUT", "/settings", settings, token=staff.token)
            rooms[client_id] = await api.direct_chat(staff, client_id=client_id)
            clients[client_id] = await api.session_for(practice_id, client_id=client_id)
        return Practice(practice_id, clients, rooms)


async def auto_replies(who: MatrixClient, room: str) -> list[dict[str, Any]]:
    """The automatic replies in a room, as its client sees them."""
    return [e for e in await who.timeline(room, 200) if AUTO_REPLY_KEY in e.get("content", {})]


async def outcomes(db: Database, event_ids: list[str]) -> dict[str, str | None]:
    """The intake queue's outcome of each event it holds (None: stored, not yet processed)."""
    rows = await db.fetch("SELECT event_id, outcome FROM event_queue")
    wanted = set(event_ids)
    return {r["event_id"]: r["outcome"] for r in rows if r["event_id"] in wanted}


async def all_processed(db: Database, event_ids: list[str]) -> dict[str, str | None]:
    """Wait until every event is in the queue and processed; their outcomes."""

    async def done() -> dict[str, str | None] | None:
        found = await outcomes(db, event_ids)
        if len(found) == len(event_ids) and None not in found.values():
            return found
        return None

    result: dict[str, str | None] = await eventually(done, timeout=120, interval=0.2)
    return result


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def bridge_output(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


class BridgeProcess:
    """``python -m bridge -c config.yaml run`` as an administrator starts it."""

    def __init__(self, config_path: Path, name: str) -> None:
        self.config = load_config(config_path, save=False)
        self.output = config_path.parent / f"{name}.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "-c", str(config_path), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout: float = 60) -> None:
        url = f"http://127.0.0.1:{self.config.appservice.port}/_matrix/mau/ready"

        async def ready() -> bool:
            assert self.proc.poll() is None, f"exited early:\n{bridge_output(self.output)}"
            try:
                async with aiohttp.ClientSession() as http, http.get(url) as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout=timeout, interval=0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(30) == -signal.SIGKILL

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@dataclass
class Backend:
    """Where a bridge process keeps its data: the URL and options its config names."""

    url: str
    opts: dict[str, Any]

    def open(self) -> Database:
        return create_database(self.url, dict(self.opts))


@pytest.fixture(params=backend_params())
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend(f"sqlite:{tmp_path / 'bridge.db'}", {})
        return
    dsn = os.environ[PG_ENV]
    async with postgres_schema(dsn) as schema:
        yield Backend(
            dsn, {"min_size": 1, "max_size": 5, "server_settings": {"search_path": schema}}
        )


# -- the bridge killed mid-stream -----------------------------------------------------------------


async def test_sigkill_mid_stream_loses_and_doubles_nothing(
    homeserver: HomeserverInfo, backend: Backend, tmp_path: Path
) -> None:
    """SIGKILL while clients keep writing, once after the first automatic reply went out and
    once after the first email: after each restart every message is processed once, each
    client gets one automatic reply, and every message is in exactly one email."""
    smtp = SmtpServer()
    smtp.start()
    config = bridge_config(homeserver, tmp_path)
    config.appservice.database = backend.url
    config.appservice.database_opts = backend.opts
    config.notifications.delay_seconds = 2
    config.notifications.portal_url = "https://portal.example.com"
    config.notifications.smtp.hostname = "127.0.0.1"
    config.notifications.smtp.port = smtp.port
    config.notifications.smtp.security = "none"
    config.notifications.smtp.from_address = "portal@example.com"
    config.save()
    config_path = Path(config.path)
    processes = [BridgeProcess(config_path, "first")]
    api = ApiClient(config, homeserver)
    look = backend.open()
    bodies: dict[str, str] = {}  # event id -> body
    emails: dict[str, str] = {}  # Message-ID -> text

    async def write(round_: int) -> None:
        for client_id, client in practice.clients.items():
            body = f"message {round_} from {client_id} ({uuid.uuid4().hex[:8]})"
            bodies[await client.say(practice.rooms[client_id], body)] = body

    async def killed_while_writing(round_: int) -> None:
        """SIGKILL while a round of messages is on its way, then a new process."""
        writing = asyncio.create_task(write(round_))
        await asyncio.sleep(0)
        processes[-1].kill()
        await writing
        processes.append(BridgeProcess(config_path, f"run{len(processes) + 1}"))
        await processes[-1].wait_ready()

    async def replies_sent() -> int:
        rows = await look.fetch("SELECT trigger_event_id, sent_event_id FROM autoresponse_job")
        return sum(1 for r in rows if r["trigger_event_id"] in bodies and r["sent_event_id"])

    def mailed() -> dict[str, list[str]]:
        """Each message and the Message-IDs of the emails that carry it."""
        emails.clear()
        for received in list(smtp.mailbox.received):
            message_id = str(received.message["Message-ID"])
            text = plain_text(received.message)
            assert emails.setdefault(message_id, text) == text, "a Message-ID reused"
        return {
            event_id: [message_id for message_id, text in emails.items() if body in text]
            for event_id, body in bodies.items()
        }

    async def some_mailed() -> bool:
        return any(mailed().values())

    try:
        await processes[0].wait_ready()
        await look.start()
        practice = await Practice.create(api, pairs=4, include_content=True)
        for round_ in range(2):
            await write(round_)
        await eventually(replies_sent)
        await killed_while_writing(2)
        for round_ in (3, 4):
            await write(round_)
        await eventually(some_mailed, timeout=60)
        await killed_while_writing(5)
        await write(6)

        found = await all_processed(look, list(bodies))
        assert found == dict.fromkeys(bodies, "ok")

        # One automatic reply per client, in their chat, answering their first message.
        for client_id, client in practice.clients.items():
            room = practice.rooms[client_id]

            async def replied(client: MatrixClient = client, room: str = room) -> Any:
                return await auto_replies(client, room)

            (reply,) = await eventually(replied)
            assert reply["content"]["body"] == AWAY
            trigger = reply["content"][AUTO_REPLY_KEY]["in_reply_to_event_id"]
            assert bodies[trigger].startswith(f"message 0 from {client_id} ")
        assert await replies_sent() == len(practice.clients)

        # Every message in exactly one email (a resend after a kill keeps its Message-ID).
        async def all_mailed() -> bool:
            return all(mailed().values())

        await eventually(all_mailed, timeout=120, interval=0.5)
        doubled = {event_id: ids for event_id, ids in mailed().items() if len(ids) != 1}
        assert not doubled, doubled
        recipients = {r for m in smtp.mailbox.received for r in m.rcpt_tos}
        assert recipients == {f"s{n}@example.com" for n in range(1, 5)}
        # Still one reply each, now that everything has settled.
        for client_id, client in practice.clients.items():
            assert len(await auto_replies(client, practice.rooms[client_id])) == 1
        # No process logged message text.
        logs = "".join(bridge_output(process.output) for process in processes)
        for body in bodies.values():
            assert body not in logs
    finally:
        for process in processes:
            process.stop()
        await api.close()
        with contextlib.suppress(Exception):
            await look.stop()
        smtp.stop()


# -- Synapse restarted under the bridge ---------------------------------------------------------


class PrivateSynapse:
    """A Synapse of the test's own, with the bridge's registration and modules, that the test
    may stop and start again (the session's Synapse serves every other test)."""

    def __init__(self, root: Path, domain: str = "restart.test") -> None:
        self.port = free_port()
        as_port = free_port()
        while as_port == self.port:
            as_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = generate_config(
            root / "config.yaml",
            **{
                "homeserver.address": self.url,
                "homeserver.domain": domain,
                "appservice.address": f"http://127.0.0.1:{as_port}",
                "appservice.port": as_port,
                "appservice.database": f"sqlite:{root / 'bridge.db'}",
                "provisioning.token_cache_seconds": 0,
            },
        )
        generate_registration(self.config, root / "registration.yaml")
        self.log = root / "synapse.log"
        spec = SynapseSpec(
            domain, self.port, root / "registration.yaml", module_entries(self.config), fast=True
        )
        self.synapse = LocalSynapse.create(root / "synapse", spec, log_path=self.log)
        self.info = HomeserverInfo(self.url, domain, root, self.config, self.log)

    async def start(self) -> None:
        # Waiting blocks: in a thread, so that a bridge in this event loop keeps running.
        await asyncio.to_thread(self.synapse.start)

    def stop(self) -> None:
        self.synapse.stop()


async def test_synapse_restart_under_the_bridge(tmp_path: Path) -> None:
    """While Synapse is down, what needs it answers a clean 502 and what does not still works;
    once it is back the bridge carries on: new messages are processed, sessions are minted,
    and an automatic reply that could not be sent during the outage is sent, once."""
    synapse = PrivateSynapse(tmp_path)
    await synapse.start()
    bridge: Bridge | None = None
    api: ApiClient | None = None
    try:
        bridge = Bridge(load_config(synapse.config.path))
        await bridge.start()
        api = ApiClient(synapse.config, synapse.info)
        practice = await Practice.create(api, pairs=2)
        c1, c2 = practice.clients["c1"], practice.clients["c2"]
        first = await c1.say(practice.rooms["c1"], "Before the restart")
        assert await all_processed(bridge.db, [first]) == {first: "ok"}
        await eventually(lambda: auto_replies(c1, practice.rooms["c1"]))

        # c2's reply is due when Synapse goes away: the sender meets the outage.
        await bridge.autoresponses.stop()
        due = await c2.say(practice.rooms["c2"], "Just before the outage")
        await all_processed(bridge.db, [due])
        synapse.stop()
        bridge.autoresponses.start()

        db = bridge.db
        assert db is not None

        async def tried() -> bool:
            attempts = await db.fetchval(
                "SELECT attempts FROM autoresponse_job WHERE trigger_event_id=$1", due
            )
            return bool(attempts)

        await eventually(tried)
        await _unhealthy(api, "synapse")
        practice_id = practice.practice_id
        down: list[tuple[str, str, Any, dict[str, Any]]] = [
            ("POST", f"/practices/{practice_id}/sessions", {"client_id": "c1"}, {}),
            (
                "PUT",
                f"/practices/{practice_id}/clients/c9",
                {
                    "name": "Client c9",
                    "email": "c9@example.com",
                    "activated": True,
                    "portal_access": True,
                },
                {},
            ),
            ("GET", "/chats", None, {"token": c1.token}),
            ("PUT", f"/chats/{quote(practice.rooms['c1'])}/pin", None, {"token": c1.token}),
        ]
        for method, path, body, kwargs in down:
            reply = await api.call(method, path, body, **kwargs)
            assert (reply.status, reply.errcode) == (502, "M_UNKNOWN"), (method, path, reply)
            C.check(method, path, reply)
        # What the bridge answers from its own database needs no homeserver.
        audit = await api.call("GET", "/audit", params={"practice_id": practice_id})
        assert audit.status == 200, audit
        C.check("GET", "/audit", audit)

        await synapse.start()
        await _healthy(api)
        # The client's messages reach the bridge again and are processed.
        after = await c1.say(practice.rooms["c1"], "After the restart")
        assert await all_processed(bridge.db, [after]) == {after: "ok"}
        # Calls that need Synapse work again, with old and new sessions alike.
        fresh = await api.session_for(practice_id, client_id="c1")
        for token in (c1.token, fresh.token):
            chats = await api.call("GET", "/chats", token=token)
            assert chats.status == 200, chats
        created = await api.call(*down[1][:3])
        assert created.status == 201, created
        # The reply that met the outage arrives, once; c1 still has only the first one.
        (reply,) = await eventually(lambda: auto_replies(c2, practice.rooms["c2"]))
        assert reply["content"][AUTO_REPLY_KEY]["in_reply_to_event_id"] == due
        assert len(await auto_replies(c1, practice.rooms["c1"])) == 1
    finally:
        if api is not None:
            await api.close()
        if bridge is not None:
            await bridge.stop()
        synapse.stop()


async def _unhealthy(api: ApiClient, check: str) -> None:
    """The health endpoint turns unhealthy, naming ``check``."""

    async def failing() -> Reply | None:
        probe = await api.call("GET", "/health", auth=False)
        return probe if probe.status == 503 else None

    probe = await eventually(failing)
    assert probe.errcode == "ORG.PRACTICEBRIDGE.UNHEALTHY", probe
    assert probe.body["checks"][check]["ok"] is False, probe
    C.check("GET", "/health", probe)


async def _healthy(api: ApiClient) -> None:
    async def passing() -> Reply | None:
        probe = await api.call("GET", "/health", auth=False)
        return probe if probe.status == 200 else None

    probe = await eventually(passing, timeout=60)
    assert all(check["ok"] for check in probe.body["checks"].values()), probe
    C.check("GET", "/health", probe)


# -- PostgreSQL restarted under the bridge ----------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3])
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder, a free port), so
    that restarting it disturbs nobody else's tests. As root, it runs as the postgres user."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="practice-bridge-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.dsn = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.root, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, program: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"

    def _ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", *args)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._ctl("-l", str(self.root / "postgres.log"), "-o", options, "start")

    # In a thread: the bridge in this event loop goes on running while pg_ctl waits.
    async def start_async(self) -> None:
        await asyncio.to_thread(self.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self._ctl, "-m", "fast", "stop")

    async def restart(self) -> None:
        await self.stop()
        await self.start_async()

    async def read_only(self, on: bool) -> None:
        """Every session's transactions become read-only (or writable again) at once."""
        admin = await asyncpg.connect(
            self.dsn, server_settings={"default_transaction_read_only": "off"}
        )
        try:
            value = "on" if on else "off"
            await admin.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
            await admin.execute("SELECT pg_reload_conf()")
        finally:
            await admin.close()

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} is not set")
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    cluster = PrivatePostgres(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


async def _unavailable_or_ok(
    api: ApiClient, method: str, path: str, body: Any = None, **kw: Any
) -> int:
    """Call the API; the answer is a success or a clean 503 STORAGE_UNAVAILABLE, never a 500."""
    reply = await api.call(method, path, body, **kw)
    if reply.status >= 300:
        assert (reply.status, reply.errcode) == (503, "ORG.PRACTICEBRIDGE.STORAGE_UNAVAILABLE"), (
            method,
            path,
            reply,
        )
    C.check(method, path.split("?")[0], reply)
    return reply.status


async def test_postgres_restart_and_read_only_under_the_bridge(
    homeserver: HomeserverInfo, private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """PostgreSQL stopped, restarted and made read-only under a running bridge: the API answers
    503 STORAGE_UNAVAILABLE while it cannot write, Synapse's transactions are not acknowledged
    until they are stored, and afterwards the bridge reconnects and processes everything once."""
    db = create_database(private_postgres.dsn, {"min_size": 1, "max_size": 5})
    bridge = Bridge(bridge_config(homeserver, tmp_path), db=db)
    await bridge.start()
    api = ApiClient(bridge.config, homeserver)
    try:
        practice = await Practice.create(api, pairs=3)
        practice_id = practice.practice_id
        audit = f"/audit?practice_id={practice_id}"
        rename = ("PUT", f"/practices/{practice_id}")
        renamed = {"name": "Sunrise Wellness II", "plan": "team", "timezone": "Europe/Berlin"}
        c1, c2, c3 = (practice.clients[c] for c in ("c1", "c2", "c3"))
        first = await c1.say(practice.rooms["c1"], "Before the outage")
        assert await all_processed(bridge.db, [first]) == {first: "ok"}

        # Down: every call that needs the database is a clean 503; Synapse's transaction with
        # c2's message is refused, so Synapse keeps it.
        await private_postgres.stop()
        for method, path, body in [("GET", audit, None), (*rename, renamed)]:
            reply = await api.call(method, path, body)
            assert (reply.status, reply.errcode) == (
                503,
                "ORG.PRACTICEBRIDGE.STORAGE_UNAVAILABLE",
            ), reply
            C.check(method, path.split("?")[0], reply)
        during = await c2.say(practice.rooms["c2"], "During the outage")
        await _unhealthy(api, "database")
        await private_postgres.start_async()
        await _healthy(api)
        assert await all_processed(bridge.db, [during]) == {during: "ok"}

        # Restarted while idle: the pool's connections are gone; the bridge reconnects.
        await private_postgres.restart()

        async def answers() -> bool:
            return await _unavailable_or_ok(api, "GET", audit) == 200

        await eventually(answers)
        assert await _unavailable_or_ok(api, *rename, renamed) == 200

        # Read-only: reads work, writes are refused cleanly, the pipeline waits.
        await private_postgres.read_only(True)

        async def refused() -> bool:
            return await _unavailable_or_ok(api, *rename, renamed) == 503

        await eventually(refused)
        assert await _unavailable_or_ok(api, "GET", audit) == 200
        late = await c3.say(practice.rooms["c3"], "While the database is read-only")
        await private_postgres.read_only(False)
        assert await all_processed(bridge.db, [late]) == {late: "ok"}
        assert await _unavailable_or_ok(api, *rename, renamed) == 200

        # One automatic reply each, whatever their messages went through.
        for client_id, client in practice.clients.items():
            room = practice.rooms[client_id]

            async def replied(client: MatrixClient = client, room: str = room) -> Any:
                return await auto_replies(client, room)

            assert len(await eventually(replied)) == 1
        counts = Counter(
            r["outcome"] for r in await bridge.db.fetch("SELECT outcome FROM event_queue")
        )
        assert set(counts) <= {"ok", None}, counts
    finally:
        await api.close()
        await bridge.stop()


# -- a full or read-only database -----------------------------------------------------------------


@pytest.fixture
async def sqlite_bridge(homeserver: HomeserverInfo, tmp_path: Path) -> AsyncIterator[Bridge]:
    """An in-process bridge on SQLite, whose one connection the test can make full or
    read-only with SQLite's own pragmas (the faults SQLite reports for a full disk and a
    read-only file: SQLITE_FULL, SQLITE_READONLY)."""
    db = create_database(f"sqlite:{tmp_path / 'bridge.db'}")
    async with running_bridge(homeserver, tmp_path, db) as bridge:
        yield bridge


class Attempts:
    """A pipeline handler that runs first and counts how often each event was tried."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def __call__(self, conn: Any, ev: Any) -> None:
        self.calls[ev.event_id] += 1


async def _held_messages(
    bridge: Bridge, practice: Practice, per_client: int
) -> tuple[list[str], Attempts]:
    """Messages from every client, stored by the intake while the pipeline is held."""
    attempts = Attempts()
    bridge.pipeline.handlers.insert(0, attempts)
    await bridge.pipeline.stop()
    sent = []
    for n in range(per_client):
        for client_id, client in practice.clients.items():
            sent.append(await client.say(practice.rooms[client_id], f"message {n}"))

    async def stored() -> bool:
        return len(await outcomes(bridge.db, sent)) == len(sent)

    await eventually(stored)
    return sent, attempts


async def _transaction(bridge: Bridge, events: list[dict[str, Any]]) -> Reply:
    """A transaction as Synapse sends it, to see the bridge's answer itself."""
    cfg = bridge.config
    url = f"http://127.0.0.1:{cfg.appservice.port}/_matrix/app/v1/transactions/"
    headers = {"Authorization": f"Bearer {cfg.appservice.hs_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.put(url + uuid.uuid4().hex, json={"events": events}, headers=headers) as r:
            return Reply(r.status, await r.json(content_type=None))


def _made_up_events(count: int, size: int) -> list[dict[str, Any]]:
    room = f"!{uuid.uuid4().hex[:18]}:practice.test"
    return [
        {
            "type": "org.example.padding",
            "room_id": room,
            "sender": "@someone:practice.test",
            "event_id": f"${uuid.uuid4().hex}",
            "content": {"pad": "x" * size},
        }
        for _ in range(count)
    ]


async def _one_reply_each(practice: Practice) -> None:
    for client_id, client in practice.clients.items():
        room = practice.rooms[client_id]

        async def replied(client: MatrixClient = client, room: str = room) -> Any:
            return await auto_replies(client, room)

        assert len(await eventually(replied)) == 1, client_id


async def test_full_database_refuses_cleanly_and_loses_nothing(
    sqlite_bridge: Bridge, homeserver: HomeserverInfo
) -> None:
    """A full disk: Synapse's transactions are refused (503, nothing half-stored), the API
    answers 503 STORAGE_UNAVAILABLE where it cannot write, and the pipeline waits instead of
    skipping events; once there is room again every event is processed once."""
    bridge = sqlite_bridge
    config = bridge.config
    api = ApiClient(config, homeserver)
    try:
        practice = await Practice.create(api, pairs=2)
        sent, attempts = await _held_messages(bridge, practice, per_client=40)

        # The disk is full: no page more than the file has, and every free byte taken.
        await bridge.db.execute("CREATE TABLE test_filler (pad BLOB)")
        pages = await bridge.db.fetchval("PRAGMA page_count")
        await bridge.db.execute(f"PRAGMA max_page_count = {pages}")
        for size in (4000, 400, 40):
            with pytest.raises(sqlite3.OperationalError, match="full"):
                for _ in range(100_000):
                    await bridge.db.execute(f"INSERT INTO test_filler VALUES (zeroblob({size}))")

        # Intake: refused, so Synapse keeps it; not a row of it stored.
        events = _made_up_events(50, 2000)
        refused = await _transaction(bridge, events)
        assert (refused.status, refused.errcode) == (503, "M_UNKNOWN"), refused
        assert await outcomes(bridge.db, [ev["event_id"] for ev in events]) == {}
        # The API never answers 500: it writes, or refuses with a clean 503.
        for n in range(1, 3):
            await _unavailable_or_ok(
                api,
                "PUT",
                f"/practices/{practice.practice_id}/clients/new{n}",
                {
                    "name": "x" * 256,
                    "email": f"new{n}@example.com",
                    "activated": False,
                    "portal_access": False,
                },
            )
        audit = f"/audit?practice_id={practice.practice_id}"
        assert await _unavailable_or_ok(api, "GET", audit) == 200

        # The pipeline tries, fails on the full disk, and waits: no event is skipped.
        bridge.pipeline.start()

        async def retried() -> bool:
            return attempts.calls[sent[0]] >= 2

        await eventually(retried)
        assert set((await outcomes(bridge.db, sent)).values()) == {None}
        # Held for the database: the metrics' waiting_for_storage; the health check, told to
        # take any wait for stuck, turns unhealthy while the database still answers.
        assert 0 < bridge.pipeline.waiting_for_storage <= len(sent)
        bridge.health.stuck_after = 0
        await _unhealthy(api, "pipeline")

        # Room again.
        await bridge.db.execute("DROP TABLE test_filler")
        await bridge.db.execute("PRAGMA max_page_count = 1073741823")
        assert await all_processed(bridge.db, sent) == dict.fromkeys(sent, "ok")
        assert bridge.pipeline.waiting_for_storage == 0
        await _healthy(api)
        await _one_reply_each(practice)
        s1 = await api.session_for(practice.practice_id, staff_id="s1")
        chats = await api.ok("GET", "/chats", token=s1.token)
        (chat,) = chats["chats"]
        assert chat["unread_count"] == 40
        stored = await _transaction(bridge, events)
        assert stored.status == 200
    finally:
        await api.close()


async def test_read_only_database_refuses_writes_and_half_writes_nothing(
    sqlite_bridge: Bridge, homeserver: HomeserverInfo
) -> None:
    """A read-only database: reads still answer, every write is refused with a clean error and
    leaves nothing behind, and the pipeline resumes once it can write again."""
    bridge = sqlite_bridge
    config = bridge.config
    api = ApiClient(config, homeserver)
    try:
        practice = await Practice.create(api, pairs=2)
        practice_id = practice.practice_id
        s1 = await api.session_for(practice_id, staff_id="s1")
        sent, attempts = await _held_messages(bridge, practice, per_client=3)
        before = await api.ok("GET", "/settings", token=s1.token)
        entries = await api.ok("GET", f"/audit?practice_id={practice_id}")

        await bridge.db.execute("PRAGMA query_only = ON")
        writes: list[tuple[str, str, Any]] = [
            (
                "PUT",
                f"/practices/{practice_id}",
                {"name": "Renamed", "plan": "solo", "timezone": "Europe/Paris"},
            ),
            (
                "PUT",
                "/settings",
                {"enter_key": "newline", "practice": {"client_message_limit": 5}},
            ),
            ("DELETE", f"/practices/{practice_id}/clients/c2", None),
            ("PUT", f"/chats/{quote(practice.rooms['c1'])}/hide", None),
        ]
        for method, path, body in writes:
            token = s1.token if not path.startswith("/practices") else None
            reply = await api.call(method, path, body, token=token)
            assert (reply.status, reply.errcode) == (
                503,
                "ORG.PRACTICEBRIDGE.STORAGE_UNAVAILABLE",
            ), (method, path, reply)
            C.check(method, path, reply)
        events = _made_up_events(3, 10)
        refused = await _transaction(bridge, events)
        assert (refused.status, refused.errcode) == (503, "M_UNKNOWN"), refused
        # Reads answer as before, and nothing of the refused writes shows.
        assert await api.ok("GET", "/settings", token=s1.token) == before
        assert await api.ok("GET", f"/audit?practice_id={practice_id}") == entries
        # The chat list refreshes its mirror of the user's Matrix account data as it reads:
        # it answers, or says cleanly that it cannot.
        await _unavailable_or_ok(api, "GET", "/chats", token=s1.token)
        # The refused removal ended none of the client's sessions.
        assert (await practice.clients["c2"].whoami()).status == 200

        bridge.pipeline.start()

        async def retried() -> bool:
            return attempts.calls[sent[0]] >= 2

        await eventually(retried)
        assert set((await outcomes(bridge.db, sent)).values()) == {None}

        await bridge.db.execute("PRAGMA query_only = OFF")
        assert await all_processed(bridge.db, sent) == dict.fromkeys(sent, "ok")
        await _one_reply_each(practice)
        assert await outcomes(bridge.db, [ev["event_id"] for ev in events]) == {}
        for method, path, body in writes[:1]:
            assert (await api.call(method, path, body)).status == 200
        after = await api.ok("GET", f"/audit?practice_id={practice_id}")
        new = after["entries"][: len(after["entries"]) - len(entries["entries"])]
        assert [e["action"] for e in new] == ["practice.updated"]
    finally:
        await api.close()
