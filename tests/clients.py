"""Clients the tests use exactly as a portal or an admin would: the provisioning API, Synapse
and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from mautrix.util.async_db import Database

from config import Config
from registration.workers import SynapseWorkers

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``practice-bridge ARGS`` run in ``cwd`` with this checkout's code (``input`` on stdin)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class HomeserverInfo:
    url: str
    domain: str
    root: Path
    config: Config
    log_path: Path
    workers: SynapseWorkers | None = None  # the processes, when Synapse runs with workers


@dataclass
class Reply:
    status: int
    body: Any

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


class ApiClient:
    """The provisioning API over real HTTP on the bridge's listener."""

    def __init__(self, cfg: Config, homeserver: HomeserverInfo) -> None:
        """For the bridge that runs with config ``cfg`` (in this process or another)."""
        self.base = f"http://127.0.0.1:{cfg.appservice.port}{cfg.provisioning.prefix}"
        self.secret = cfg.provisioning.shared_secret
        self.homeserver = homeserver
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        params: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Reply:
        headers = {}
        if auth:
            headers["Authorization"] = f"Bearer {token or self.secret}"
        kwargs: dict[str, Any] = {"headers": headers, "params": params}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = await resp.text()
            return Reply(resp.status, data)

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """The body of a call that must succeed."""
        reply = await self.call(method, path, body, **kwargs)
        assert reply.status in (200, 201), (method, path, reply)
        return reply.body

    async def setup_practice(
        self,
        practice_id: str,
        *,
        plan: str = "team",
        clients: tuple[str, ...] = ("c1",),
        staff: tuple[tuple[str, str], ...] = (("s1", "practitioner"),),
    ) -> None:
        r = await self.call(
            "PUT",
            f"/practices/{practice_id}",
            {"name": "Sunrise Wellness", "plan": plan, "timezone": "Europe/Berlin"},
        )
        assert r.status in (200, 201), r.body
        for staff_id, role in staff:
            r = await self.call(
                "PUT",
                f"/practices/{practice_id}/staff/{staff_id}",
                {"name": f"Staff {staff_id}", "email": f"{staff_id}@example.com", "role": role},
            )
            assert r.status in (200, 201), r.body
        for client_id in clients:
            r = await self.put_client(practice_id, client_id)
            assert r.status in (200, 201), r.body

    async def put_client(self, practice_id: str, client_id: str, **fields: Any) -> Reply:
        """``PUT`` a client record as the portal backend: an activated client with portal
        access and no family primary, named after its id, but for ``fields``."""
        body = {
            "name": f"Client {client_id}",
            "email": f"{client_id}@example.com",
            "activated": True,
            "portal_access": True,
            "family_primary_id": None,
        }
        return await self.call(
            "PUT", f"/practices/{practice_id}/clients/{client_id}", body | fields
        )

    async def staff_and_client(
        self, practice_id: str, **setup: Any
    ) -> tuple[MatrixClient, MatrixClient]:
        """The practice (``setup_practice``), and its staff member s1 and client c1 signed in."""
        await self.setup_practice(practice_id, **setup)
        staff = await self.session_for(practice_id, staff_id="s1")
        return staff, await self.session_for(practice_id, client_id="c1")

    async def direct_chat(self, who: MatrixClient, **body: Any) -> str:
        """``POST /chats/direct`` as ``who``: the chat's id, new or existing."""
        r = await self.call("POST", "/chats/direct", body, token=who.token)
        assert r.status in (200, 201), r.body
        return str(r.body["chat_id"])

    async def session_for(self, practice_id: str, **who: str) -> MatrixClient:
        r = await self.call("POST", f"/practices/{practice_id}/sessions", who)
        assert r.status == 201, r.body
        return MatrixClient(
            self.homeserver.url, r.body["access_token"], r.body["user_id"], self.session
        )


class MatrixClient:
    """A portal frontend's Matrix session: the client-server API with a minted token."""

    def __init__(
        self, base: str, token: str, user_id: str, session: aiohttp.ClientSession
    ) -> None:
        self.base = base
        self.token = token
        self.user_id = user_id
        self.session = session

    async def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Reply:
        async with self.session.request(
            method,
            self.base + path,
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as resp:
            return Reply(resp.status, await resp.json(content_type=None))

    async def whoami(self) -> Reply:
        return await self.request("GET", "/_matrix/client/v3/account/whoami")

    async def send(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> Reply:
        txn = uuid.uuid4().hex
        return await self.request(
            "PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/send/{event_type}/{txn}", content
        )

    async def sent(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        """Send an event the homeserver must accept; its id."""
        r = await self.send(room_id, content, event_type)
        assert r.status == 200, r.body
        return str(r.body["event_id"])

    async def say(self, room_id: str, text: str) -> str:
        """Send a plain text message; its event id."""
        return await self.sent(room_id, {"msgtype": "m.text", "body": text})

    async def state(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any]:
        """The content of a state event of the room (which must be there)."""
        r = await self.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{event_type}/{state_key}"
        )
        assert r.status == 200, r.body
        return dict(r.body)

    async def timeline(self, room_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The room's latest events as this user reads them, oldest first (``/messages``)."""
        r = await self.request(
            "GET",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/messages",
            params={"dir": "b", "limit": str(limit)},
        )
        assert r.status == 200, r.body
        return list(reversed(r.body["chunk"]))


async def eventually(check: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Poll ``check`` (an async callable) until it returns something truthy; return that."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: last result {result!r}")
        await asyncio.sleep(interval)


async def processed(db: Database, event_id: str, timeout: float = 15.0) -> None:
    """Wait until the bridge's pipeline has processed the event."""

    async def done() -> bool:
        value = await db.fetchval(
            "SELECT processed_at FROM event_queue WHERE event_id=$1", event_id
        )
        return value is not None

    await eventually(done, timeout)


# The rule tests: the policy state the bot keeps in every chat, and the client message limit
# they set through PUT /settings.
POLICY = "org.practicebridge.policy"
LIMIT = 20


async def policy_of(mc: MatrixClient, room: str) -> dict[str, Any]:
    r = await mc.request("GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/{POLICY}/")
    assert r.status == 200, r.body
    return dict(r.body)


async def as_bot(hs: HomeserverInfo, method: str, path: str, body: Any = None) -> Reply:
    """A request with the appservice's token, made outside the bridge."""
    headers = {"Authorization": f"Bearer {hs.config.appservice.as_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, hs.url + path, json=body, headers=headers) as resp:
            return Reply(resp.status, await resp.json(content_type=None))


async def chat_with_limit(
    api: ApiClient,
    practice_id: str,
    limit: int | None = LIMIT,
    *,
    staff: tuple[tuple[str, str], ...] = (("own", "owner"),),
) -> tuple[MatrixClient, MatrixClient, str]:
    """The owner's direct chat with a client (c1), the practice's client message limit set
    through PUT /settings and applied to the room's policy state: (owner, client, room)."""
    await api.setup_practice(practice_id, staff=staff, clients=("c1",))
    owner = await api.session_for(practice_id, staff_id="own")
    client = await api.session_for(practice_id, client_id="c1")
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=owner.token)
    assert r.status == 201, r.body
    room = str(r.body["chat_id"])
    if limit is not None:
        r = await api.call(
            "PUT", "/settings", {"practice": {"client_message_limit": limit}}, token=owner.token
        )
        assert r.status == 200, r.body

        async def applied() -> bool:
            return (await policy_of(client, room)).get("client_message_limit") == limit

        await eventually(applied)
    return owner, client, room
