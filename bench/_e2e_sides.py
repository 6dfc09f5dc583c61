"""The three sides of the end-to-end bench (:mod:`bench.e2e`): how each is set up, and one
timed send on any of them."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench import null_appservice
from bench._product import (
    DOMAIN,
    V3,
    Homeserver,
    call,
    product_config,
    register_plain_user,
    start_homeserver,
)
from registration.homeserver import free_port
from registration.processes import ProcessGroup

PARK_SECONDS = 0.03  # the staff member's long-poll is waiting in Synapse before the send
# A frontend's filter: recent timeline, members lazy-loaded, no presence.
STAFF_FILTER = json.dumps(
    {
        "presence": {"types": []},
        "room": {"timeline": {"limit": 20}, "state": {"lazy_load_members": True}},
    }
)


@dataclass
class Side:
    """One Synapse, a room in it, a client who sends and a staff member who syncs."""

    name: str
    hs: Homeserver
    room: str = ""
    client_token: str = ""
    staff_token: str = ""
    since: str = ""


async def product_side(session: aiohttp.ClientSession, side: Side, config: Any) -> None:
    """A practice through the API: its practitioner and client, sessions, a direct chat."""
    api = f"http://127.0.0.1:{config.appservice.port}{config.provisioning.prefix}"
    secret = config.provisioning.shared_secret
    practice = f"{api}/practices/bench"

    async def backend(method: str, path: str, body: dict[str, Any]) -> Any:
        return await call(session, method, practice + path, body, token=secret)

    await backend("PUT", "", {"name": "Sunrise", "plan": "team", "timezone": "UTC"})
    lee = {"name": "Dr. Lee", "email": "lee@example.org", "role": "practitioner"}
    await backend("PUT", "/staff/s1", lee)
    anna = {"name": "Anna Example", "email": "anna@example.org", "activated": True}
    await backend("PUT", "/clients/c1", anna | {"portal_access": True, "family_primary_id": None})
    staff = await backend("POST", "/sessions", {"staff_id": "s1"})
    client = await backend("POST", "/sessions", {"client_id": "c1"})
    side.staff_token, side.client_token = staff["access_token"], client["access_token"]
    chat = await call(
        session, "POST", f"{api}/chats/direct", {"client_id": "c1"}, token=side.staff_token
    )
    side.room = str(chat["chat_id"])


async def _direct_room(session: aiohttp.ClientSession, side: Side) -> None:
    """A private room the staff member made and the client joined."""
    created = await call(
        session,
        "POST",
        f"{side.hs.url}{V3}/createRoom",
        {"preset": "private_chat", "is_direct": True, "invite": [f"@client:{DOMAIN}"]},
        token=side.staff_token,
    )
    side.room = str(created["room_id"])
    join = f"{side.hs.url}{V3}/rooms/{quote(side.room)}/join"
    await call(session, "POST", join, {}, token=side.client_token)


async def plain_side(session: aiohttp.ClientSession, side: Side) -> None:
    """Two plain users (shared-secret registration, password login) in a direct room."""
    side.staff_token = await register_plain_user(session, side.hs, "staff", "bench-staff-pw")
    side.client_token = await register_plain_user(session, side.hs, "client", "bench-client-pw")
    await _direct_room(session, side)


async def floor_side(session: aiohttp.ClientSession, side: Side, as_token: str) -> None:
    """The appservice's two users, each with a device (as the bridge mints sessions), in a
    direct room."""

    async def user(localpart: str) -> str:
        body = {"type": "m.login.application_service", "username": localpart}
        await call(session, "POST", f"{side.hs.url}{V3}/register", body, token=as_token)
        identifier = {"type": "m.id.user", "user": localpart}
        login = {"type": "m.login.application_service", "identifier": identifier}
        answer = await call(session, "POST", f"{side.hs.url}{V3}/login", login, token=as_token)
        return str(answer["access_token"])

    side.staff_token, side.client_token = await user("staff"), await user("client")
    await _direct_room(session, side)


async def sync(session: aiohttp.ClientSession, side: Side, timeout_ms: int) -> dict[str, Any]:
    params = {"filter": STAFF_FILTER, "timeout": str(timeout_ms)}
    if side.since:
        params["since"] = side.since
    async with session.get(
        f"{side.hs.url}{V3}/sync",
        params=params,
        headers={"Authorization": f"Bearer {side.staff_token}"},
    ) as resp:
        if resp.status != 200:
            raise RuntimeError(f"/sync on {side.name}: {resp.status} {await resp.text()}")
        body: dict[str, Any] = await resp.json()
    side.since = str(body["next_batch"])
    return body


def holds(body: dict[str, Any], room: str, nonce: str) -> bool:
    timeline = ((body.get("rooms") or {}).get("join") or {}).get(room, {}).get("timeline", {})
    return any(
        nonce in str((ev.get("content") or {}).get("body", ""))
        for ev in timeline.get("events", [])
    )


async def sample(session: aiohttp.ClientSession, side: Side) -> float:
    """One send, timed until the staff member's sync has shown it."""
    nonce = uuid.uuid4().hex
    poll = asyncio.create_task(sync(session, side, 30_000))
    await asyncio.sleep(PARK_SECONDS)
    path = f"{side.hs.url}{V3}/rooms/{quote(side.room)}/send/m.room.message/{nonce}"
    content = {"msgtype": "m.text", "body": f"Could we move Thursday's session? ({nonce})"}
    start = time.perf_counter()
    async with session.put(
        path, json=content, headers={"Authorization": f"Bearer {side.client_token}"}
    ) as resp:
        await resp.read()
        if resp.status != 200:
            poll.cancel()
            raise RuntimeError(f"send on {side.name}: {resp.status}")
    while not holds(await poll, side.room, nonce):
        poll = asyncio.create_task(sync(session, side, 30_000))
    return time.perf_counter() - start


def start_floor(
    root: Path, settings: Mapping[str, Any] | None
) -> tuple[Homeserver, ProcessGroup, str]:
    """A Synapse (with these homeserver.yaml ``settings``) and the appservice that does nothing,
    registered there once it answers (an appservice Synapse finds down is retried later,
    which would hold its transactions); returns them and the appservice's token."""
    config = product_config(root)
    port = free_port()
    users = rf"@(staff|client):{re.escape(DOMAIN)}$"
    registration = root / "registration.yaml"
    as_token = null_appservice.write_registration(registration, port, users)
    appservice = null_appservice.process(port, root / "null-appservice.log")
    appservice.start()
    try:
        hs = start_homeserver(
            root, config, product=False, appservice=registration, settings=settings
        )
    except BaseException:
        appservice.stop()
        raise
    return hs, appservice, as_token
