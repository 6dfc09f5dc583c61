"""The practice rules inside Synapse (practice_bridge_synapse.rules), on the real homeserver.

Every refusal is checked over HTTP exactly as a portal frontend meets it: status, errcode, the
sentence and its fields, and that nothing was stored.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from mautrix.types import UserID

from bridge.app import Bridge
from bridge.chats import layout
from tests.clients import (
    LIMIT,
    POLICY,
    ApiClient,
    MatrixClient,
    Reply,
    chat_with_limit,
    policy_of,
)

pytestmark = pytest.mark.synapse_workers

TOO_LONG = "ORG.PRACTICEBRIDGE.MESSAGE_TOO_LONG"


def _text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


def _edit(original: str, body: str) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": "* " + body,
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }


def _marked(length: int) -> str:
    """A body of exactly ``length`` code points that no other test sends."""
    mark = uuid.uuid4().hex[:8]
    return (mark + "x" * length)[:length]


async def _bodies(mc: MatrixClient, room: str) -> list[str]:
    """Every text body in the room's timeline, edits' new bodies included."""
    r = await mc.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room)}/messages",
        params={"dir": "b", "limit": "100"},
    )
    assert r.status == 200, r.body
    found = []
    for ev in r.body["chunk"]:
        content = ev.get("content", {})
        found.append(str(content.get("body", "")))
        found.append(str(content.get("m.new_content", {}).get("body", "")))
    return found


def _refused_as_too_long(r: Reply, limit: int = LIMIT) -> None:
    assert r.status == 400, r.body
    assert r.errcode == TOO_LONG
    assert r.body["max_length"] == limit
    assert str(limit) in r.body["error"]


async def test_the_bridge_knows_the_module_is_active_from_its_probe(
    bridge: Bridge, api: ApiClient, practice_id: str
) -> None:
    assert bridge.module_active is True
    assert bridge.rules.enforcing is False
    url = api.homeserver.url + "/_synapse/client/org.practicebridge/module"
    as_token = api.homeserver.config.appservice.as_token
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": f"Bearer {as_token}"}) as resp:
            assert resp.status == 200
            answer = await resp.json()
        # Nobody else learns which bot and rules run here.
        async with session.get(url) as resp:
            assert resp.status == 401
            assert "bot_user_id" not in await resp.json()
        await api.setup_practice(practice_id, clients=("c1",))
        client = await api.session_for(practice_id, client_id="c1")
        headers = {"Authorization": f"Bearer {client.token}"}
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 403
            body = await resp.json()
            assert body["errcode"] == "M_FORBIDDEN" and "bot_user_id" not in body
    assert answer["module"] == "practice-bridge"
    assert answer["bot_user_id"] == bridge.mapper.bot_mxid
    assert "client_message_limit" in answer["rules"]


async def test_client_over_limit_is_rejected_before_storage(
    api: ApiClient, practice_id: str
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id)
    over = _marked(LIMIT + 1)
    r = await client.send(room, _text(over))
    _refused_as_too_long(r)
    at_limit = _marked(LIMIT)
    r = await client.send(room, _text(at_limit))
    assert r.status == 200, r.body
    bodies = await _bodies(owner, room)
    assert at_limit in bodies
    assert over not in bodies


async def test_code_points_are_counted_not_bytes_or_utf16_units(
    api: ApiClient, practice_id: str
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id)
    # One code point each, four bytes in UTF-8 and two UTF-16 units.
    r = await client.send(room, _text("😀" * LIMIT))
    assert r.status == 200, r.body
    r = await client.send(room, _text("😀" * (LIMIT + 1)))
    _refused_as_too_long(r)
    # A skin-toned thumb is two code points.
    r = await client.send(room, _text("👍🏽" * (LIMIT // 2)))
    assert r.status == 200, r.body
    r = await client.send(room, _text("👍🏽" * (LIMIT // 2) + "!"))
    _refused_as_too_long(r)


async def test_client_over_limit_edit_is_rejected(api: ApiClient, practice_id: str) -> None:
    owner, client, room = await chat_with_limit(api, practice_id)
    r = await client.send(room, _text("short"))
    assert r.status == 200, r.body
    original = r.body["event_id"]
    over = _marked(LIMIT + 1)
    r = await client.send(room, _edit(original, over))
    _refused_as_too_long(r)
    # The "* " of the fallback body is not the client's text: an edit at the limit passes.
    at_limit = _marked(LIMIT)
    r = await client.send(room, _edit(original, at_limit))
    assert r.status == 200, r.body
    bodies = await _bodies(owner, room)
    assert at_limit in bodies and over not in bodies
    # A short new body does not smuggle a long fallback body in.
    r = await client.send(
        room,
        {
            "msgtype": "m.text",
            "body": "* " + _marked(LIMIT + 5),
            "m.new_content": {"msgtype": "m.text", "body": "ok"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    _refused_as_too_long(r)


async def test_captions_count_and_file_names_do_not(api: ApiClient, practice_id: str) -> None:
    owner, client, room = await chat_with_limit(api, practice_id)
    media = {"msgtype": "m.image", "url": "mxc://practice.test/abc"}
    long_name = _marked(LIMIT + 10) + ".png"
    r = await client.send(room, media | {"body": long_name})
    assert r.status == 200, r.body
    r = await client.send(room, media | {"body": long_name, "filename": long_name})
    assert r.status == 200, r.body
    r = await client.send(room, media | {"body": _marked(LIMIT + 1), "filename": "scan.png"})
    _refused_as_too_long(r)
    for msgtype in ("m.file", "m.audio", "m.video"):
        caption = {"msgtype": msgtype, "body": _marked(LIMIT + 1), "filename": "scan.png"}
        _refused_as_too_long(await client.send(room, media | caption))


async def test_staff_and_the_bot_are_never_limited(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id)
    long_text = _marked(10_000)
    r = await owner.send(room, _text(long_text))
    assert r.status == 200, r.body
    event_id = await bridge.rooms.send_message(
        room, bridge.mapper.bot_mxid, _text(_marked(5_000)), uuid.uuid4().hex
    )
    assert event_id.startswith("$")
    assert long_text in await _bodies(client, room)


async def test_no_policy_means_no_limit(api: ApiClient, practice_id: str) -> None:
    owner, client, room = await chat_with_limit(api, practice_id, limit=None)
    assert (await policy_of(client, room))["client_message_limit"] is None
    r = await client.send(room, _text(_marked(5_000)))
    assert r.status == 200, r.body


async def test_client_never_invites_creates_rooms_or_sends_state(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id, staff=(("s1", "practitioner"), ("s2", "practitioner")))
    staff = await api.session_for(practice_id, staff_id="s1")
    other = await api.session_for(practice_id, staff_id="s2")
    client = await api.session_for(practice_id, client_id="c1")
    # A room the practitioner made, where the client holds every power: what refuses the client
    # below is the module, not the room's power levels.
    r = await staff.request(
        "POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "invite": []}
    )
    assert r.status == 200, r.body
    room = r.body["room_id"]
    r = await staff.request(
        "POST", f"/_matrix/client/v3/rooms/{quote(room)}/invite", {"user_id": client.user_id}
    )
    assert r.status == 200, r.body
    r = await client.request("POST", f"/_matrix/client/v3/rooms/{quote(room)}/join", {})
    assert r.status == 200, r.body
    levels_path = f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.power_levels/"
    levels = (await staff.request("GET", levels_path)).body
    levels["users"][client.user_id] = 100
    r = await staff.request("PUT", levels_path, levels)
    assert r.status == 200, r.body

    r = await client.request(
        "POST", f"/_matrix/client/v3/rooms/{quote(room)}/invite", {"user_id": other.user_id}
    )
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN")
    assert r.body["error"] == "Only the practice adds people to chats."
    r = await client.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.member/{quote(other.user_id)}",
        {"membership": "invite"},
    )
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN")
    r = await client.request(
        "PUT", f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.topic/", {"topic": "mine"}
    )
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN")
    assert r.body["error"] == "Clients cannot change a chat's settings."
    topic = await staff.request(
        "GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.topic/"
    )
    assert topic.status == 404
    members = await staff.request("GET", f"/_matrix/client/v3/rooms/{quote(room)}/members")
    assert other.user_id not in {ev["state_key"] for ev in members.body["chunk"]}

    r = await client.request(
        "POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "name": "mine"}
    )
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN")
    assert r.body["error"] == "Clients cannot create chats; the practice starts them."
    # Staff are not clients: the same practitioner creates rooms freely.
    r = await other.request("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"})
    assert r.status == 200, r.body
    # A client still leaves a room (their own membership).
    r = await client.request("POST", f"/_matrix/client/v3/rooms/{quote(room)}/leave", {})
    assert r.status == 200, r.body


async def test_policy_is_trusted_only_from_the_bot(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    staff, client = await api.staff_and_client(practice_id)
    # A room where a practitioner may write any state, the policy included.
    levels = layout.power_levels([])
    levels["users"][staff.user_id] = 100
    room = await bridge.rooms.create_room(
        name=None,
        room_version=layout.ROOM_VERSION,
        is_direct=False,
        initial_state=[],
        power_levels=levels,
        invitees=[UserID(staff.user_id), UserID(client.user_id)],
    )
    for user in (staff.user_id, client.user_id):
        await bridge.rooms.join(room, UserID(user))
    forged = {
        "client_user_ids": [client.user_id],
        "client_message_limit": 5,
        "kind": "direct",
        "clients_may_send": True,
    }
    r = await staff.request(
        "PUT", f"/_matrix/client/v3/rooms/{quote(room)}/state/{POLICY}/", forged
    )
    assert r.status == 200, r.body
    r = await client.send(room, _text(_marked(50)))
    assert r.status == 200, r.body  # A practitioner's policy event is not the bot's.

    # The very same content from the bot applies.
    await bridge.rooms.send_state(room, POLICY, forged)
    r = await client.send(room, _text(_marked(50)))
    _refused_as_too_long(r, limit=5)


async def test_client_without_direct_chat_access_cannot_send_in_that_chat(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id, limit=None)
    # The policy the bridge writes when a client's direct chat access is off.
    policy = await policy_of(client, room)
    await bridge.rooms.send_state(room, POLICY, policy | {"clients_may_send": False})
    r = await client.send(room, _text("hello"))
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.DIRECT_CHAT_DISABLED")
    assert r.body["error"]
    r = await client.send(
        room, {"m.relates_to": {"rel_type": "m.annotation", "key": "👍"}}, "m.reaction"
    )
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.DIRECT_CHAT_DISABLED")
    r = await owner.send(room, _text("the practitioner still writes"))
    assert r.status == 200, r.body

    # Through the API: access off for the client, and the chat refuses the client for good.
    path = f"/practices/{practice_id}/clients/c1/direct-chat"
    r = await api.call("PUT", path, {"enabled": False}, token=owner.token)
    assert r.status == 200, r.body
    r = await client.send(room, _text("still here?"))
    assert r.status == 403, r.body
    assert "still here?" not in await _bodies(owner, room)


async def test_deleting_a_limited_chat_still_works(api: ApiClient, practice_id: str) -> None:
    owner, client, room = await chat_with_limit(api, practice_id)
    r = await api.call("DELETE", f"/chats/{quote(room)}", token=owner.token)
    assert r.status in (200, 204), r.body
