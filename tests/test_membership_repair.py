"""Membership is the bridge's: a member taken out of a chat behind the bridge's back (here: the
bot's own token used directly, as an admin could, while the bridge runs and while it is stopped)
is put back, when the bridge sees it and at start; the bridge's own removals stay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from mautrix.types import RoomID
from mautrix.util.async_db import Database

from bridge.app import Bridge
from tests.clients import ApiClient, HomeserverInfo, MatrixClient, as_bot, eventually
from tests.conftest import bridge_config

pytestmark = pytest.mark.synapse_workers

V3 = "/_matrix/client/v3"


async def _remove(hs: HomeserverInfo, room: str, user: str, how: str = "kick") -> None:
    r = await as_bot(
        hs, "POST", f"{V3}/rooms/{quote(room)}/{how}", {"user_id": user, "reason": "admin"}
    )
    assert r.status == 200, r.body


async def _membership(hs: HomeserverInfo, room: str, user: str) -> str | None:
    r = await as_bot(hs, "GET", f"{V3}/rooms/{quote(room)}/state/m.room.member/{quote(user)}")
    return r.body.get("membership") if r.status == 200 else None


async def _joined(hs: HomeserverInfo, room: str, *users: str) -> bool:
    return all([await _membership(hs, room, user) == "join" for user in users])


async def _chat(api: ApiClient, practice_id: str) -> tuple[MatrixClient, MatrixClient, str]:
    await api.setup_practice(practice_id, clients=("c1",), staff=(("s1", "practitioner"),))
    staff = await api.session_for(practice_id, staff_id="s1")
    client = await api.session_for(practice_id, client_id="c1")
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    assert r.status == 201, r.body
    return staff, client, str(r.body["chat_id"])


async def _works_both_ways(staff: MatrixClient, client: MatrixClient, room: str) -> None:
    """A message from each side reaches the other."""
    for sender, reader in ((staff, client), (client, staff)):
        body = f"hello from {sender.user_id}"
        r = await sender.send(room, {"msgtype": "m.text", "body": body})
        assert r.status == 200, r.body

        async def arrived(reader: MatrixClient = reader, body: str = body) -> bool:
            r = await reader.request(
                "GET", f"{V3}/rooms/{quote(room)}/messages", params={"dir": "b", "limit": "10"}
            )
            assert r.status == 200, r.body
            return any(ev["content"].get("body") == body for ev in r.body["chunk"])

        await eventually(arrived)


async def _restorations(bridge: Bridge, room: str) -> list[Any]:
    return list(
        await bridge.db.fetch(
            "SELECT actor, details FROM audit_log WHERE action='chat.member_restored' "
            "AND target=$1",
            room,
        )
    )


async def test_a_member_removed_while_the_bridge_runs_is_put_back(
    api: ApiClient, bridge: Bridge, homeserver: HomeserverInfo, practice_id: str
) -> None:
    staff, client, room = await _chat(api, practice_id)
    await _remove(homeserver, room, client.user_id)
    await eventually(lambda: _joined(homeserver, room, client.user_id), timeout=30)
    await _works_both_ways(staff, client, room)
    rows = await _restorations(bridge, room)
    assert [row["actor"] for row in rows] == ["bridge"]
    assert client.user_id in rows[0]["details"] and '"leave"' in rows[0]["details"]


async def test_members_removed_while_the_bridge_was_stopped_are_put_back_at_start(
    api: ApiClient,
    bridge: Bridge,
    homeserver: HomeserverInfo,
    database_factory: Callable[[], Database],
    tmp_path: Path,
    practice_id: str,
) -> None:
    staff, client, room = await _chat(api, practice_id)
    await bridge.stop()
    await _remove(homeserver, room, staff.user_id)
    await _remove(homeserver, room, client.user_id, how="ban")
    assert await _membership(homeserver, room, client.user_id) == "ban"
    (tmp_path / "again").mkdir()
    restarted = Bridge(bridge_config(homeserver, tmp_path / "again"), db=database_factory())
    await restarted.start()
    try:
        await eventually(
            lambda: _joined(homeserver, room, staff.user_id, client.user_id), timeout=30
        )
        await _works_both_ways(staff, client, room)
        assert len(await _restorations(restarted, room)) == 2
    finally:
        await restarted.stop()


async def test_the_bridges_own_removals_stay(
    api: ApiClient, bridge: Bridge, homeserver: HomeserverInfo, practice_id: str
) -> None:
    await api.setup_practice(practice_id, clients=("c1", "c2"), staff=(("s1", "practitioner"),))
    staff = await api.session_for(practice_id, staff_id="s1")
    c1 = await api.session_for(practice_id, client_id="c1")
    c2 = await api.session_for(practice_id, client_id="c2")
    rooms = {}
    for cid in ("c1", "c2"):
        r = await api.call("POST", "/chats/direct", {"client_id": cid}, token=staff.token)
        assert r.status == 201, r.body
        rooms[cid] = str(r.body["chat_id"])
    # c1's direct chats turned off: c1 leaves them. c2 becomes a family member of c1: c2's own
    # account leaves c2's chat, which c1's account now answers.
    r = await api.call(
        "PUT", f"/practices/{practice_id}/clients/c1/direct-chat", {"enabled": False}
    )
    assert r.status == 200, r.body
    r = await api.put_client(practice_id, "c2", family_primary_id="c1")
    assert r.status == 200, r.body

    async def removed() -> bool:
        return (
            await _membership(homeserver, rooms["c1"], c1.user_id) == "leave"
            and await _membership(homeserver, rooms["c2"], c2.user_id) == "leave"
        )

    await eventually(removed)
    # Whether it saw the leave events yet or not, asked now, the bridge finds nothing to repair.
    for room in rooms.values():
        assert await bridge.membership.repair_room(RoomID(room)) == []
    assert await bridge.membership.repair_all() == 0
    assert await removed()
    assert await _joined(homeserver, rooms["c2"], c1.user_id, staff.user_id)
    for room in rooms.values():
        assert await _restorations(bridge, room) == []
