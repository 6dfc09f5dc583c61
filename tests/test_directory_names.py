"""Names come from the practice directory: a change there reaches every chat's member list and the
profile, and an avatar or name set behind the bridge's back gives way to the directory's."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.clients import ApiClient, HomeserverInfo, MatrixClient, as_bot, eventually

pytestmark = pytest.mark.synapse_workers

V3 = "/_matrix/client/v3"


async def _direct_chat(api: ApiClient, practice_id: str) -> tuple[MatrixClient, MatrixClient, str]:
    """A practice with practitioner s1 and client c1, their sessions, and their direct chat."""
    staff, client = await api.staff_and_client(
        practice_id, clients=("c1",), staff=(("s1", "practitioner"),)
    )
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    assert r.status == 201, r.body
    return staff, client, str(r.body["chat_id"])


async def _seen(viewer: MatrixClient, room: str, user: str) -> tuple[Any, Any, Any]:
    """(member event name, member event avatar, profile name) of ``user`` as ``viewer`` sees
    them."""
    r = await viewer.request("GET", f"{V3}/rooms/{quote(room)}/state/m.room.member/{quote(user)}")
    assert r.status == 200, r.body
    p = await viewer.request("GET", f"{V3}/profile/{quote(user)}")
    assert p.status == 200, p.body
    return r.body.get("displayname"), r.body.get("avatar_url"), p.body.get("displayname")


async def test_a_name_changed_in_the_directory_reaches_the_chats(
    api: ApiClient, homeserver: HomeserverInfo, practice_id: str
) -> None:
    staff, client, room = await _direct_chat(api, practice_id)
    assert await _seen(staff, room, client.user_id) == ("Client c1", None, "Client c1")

    # An avatar set behind the bridge's back (an admin, or while the module was not loaded).
    r = await as_bot(
        homeserver,
        "PUT",
        f"{V3}/profile/{quote(client.user_id)}/avatar_url",
        {"avatar_url": "mxc://practice.test/someavatar"},
    )
    assert r.status == 200, r.body
    r = await api.put_client(practice_id, "c1", name="Sam Okafor")
    assert r.status == 200, r.body
    renamed = ("Sam Okafor", None, "Sam Okafor")
    await eventually(lambda: _is(_seen(staff, room, client.user_id), renamed), timeout=30)

    r = await api.call(
        "PUT",
        f"/practices/{practice_id}/staff/s1",
        {"name": "Dana Whitfield", "email": "s1@example.com", "role": "practitioner"},
    )
    assert r.status == 200, r.body
    renamed = ("Dana Whitfield", None, "Dana Whitfield")
    await eventually(lambda: _is(_seen(client, room, staff.user_id), renamed), timeout=30)


async def test_a_name_set_in_one_chat_behind_the_bridges_back_gives_way(
    api: ApiClient, bridge: Any, homeserver: HomeserverInfo, practice_id: str
) -> None:
    """A member event with another name and a picture, sent for the client through the
    appservice (as the bridge's token could, or the client while the module was not loaded):
    the bridge sees it and gives the chat the directory's name again."""
    staff, client, room = await _direct_chat(api, practice_id)
    member = f"{V3}/rooms/{quote(room)}/state/m.room.member/{quote(client.user_id)}"
    r = await as_bot(
        homeserver,
        "PUT",
        f"{member}?user_id={quote(client.user_id)}",
        {
            "membership": "join",
            "displayname": "Staff s1 (your practitioner)",
            "avatar_url": "mxc://practice.test/someavatar",
        },
    )
    assert r.status == 200, r.body
    wanted = ("Client c1", None, "Client c1")
    await eventually(lambda: _is(_seen(staff, room, client.user_id), wanted), timeout=30)


async def _is(seen: Any, wanted: tuple[Any, ...]) -> bool:
    return bool(await seen == wanted)
