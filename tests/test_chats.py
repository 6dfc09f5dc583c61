"""Chats as rooms, through the API and real Matrix sessions (docs/chats.md)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest

from bridge.app import Bridge
from tests.clients import ApiClient, MatrixClient, eventually

pytestmark = pytest.mark.synapse_workers


async def _chats(api: ApiClient, who: MatrixClient, **params: str) -> list[dict[str, Any]]:
    r = await api.call("GET", "/chats", token=who.token, params=params or None)
    assert r.status == 200, r.body
    return list(r.body["chats"])


async def test_direct_chat_appears_in_both_syncs_with_power_levels_and_state(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    staff, client = await api.staff_and_client(practice_id)
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    assert (r.status, r.body["created"]) == (201, True)
    room = r.body["chat_id"]

    for mc in (staff, client):
        sync = await mc.request("GET", "/_matrix/client/v3/sync", params={"timeout": "0"})
        assert room in sync.body["rooms"]["join"], mc.user_id
        direct = await mc.request(
            "GET", f"/_matrix/client/v3/user/{quote(mc.user_id)}/account_data/m.direct"
        )
        other = client.user_id if mc is staff else staff.user_id
        assert room in direct.body[other]

    create = await client.state(room, "m.room.create")
    assert create["room_version"] == "12"  # the creator, the bot, stands above every level
    levels = await client.state(room, "m.room.power_levels")
    assert bridge.mapper.bot_mxid not in levels["users"]
    assert levels["users"][staff.user_id] == 50
    assert client.user_id not in levels["users"] and levels["users_default"] == 0
    assert levels["invite"] == levels["kick"] == levels["state_default"] == 100
    assert levels["events"]["m.room.pinned_events"] == 50
    assert levels["events"]["m.room.name"] == 100
    assert (await client.state(room, "m.room.join_rules"))["join_rule"] == "invite"
    hist = await client.state(room, "m.room.history_visibility")
    assert hist["history_visibility"] == "shared"
    guest = await client.state(room, "m.room.guest_access")
    assert guest["guest_access"] == "forbidden"
    chat = await client.state(room, "org.practicebridge.chat")
    assert chat["practice_id"] == practice_id and chat["kind"] == "direct"
    assert chat["owner_staff_id"] == "s1" and chat["subject_client_ids"] == ["c1"]
    policy = await client.state(room, "org.practicebridge.policy")
    assert policy["client_user_ids"] == [client.user_id]

    # Both see the chat in their list; the client names it after the practitioner.
    (staff_item,) = await _chats(api, staff)
    (client_item,) = await _chats(api, client)
    assert staff_item["chat_id"] == client_item["chat_id"] == room
    assert client_item["name"] == "Staff s1" and staff_item["name"] == "Client c1"

    # The same chat is reused from either side, never duplicated.
    assert await api.direct_chat(staff, client_id="c1") == room
    r = await api.call("POST", "/chats/direct", {"staff_id": "s1"}, token=client.token)
    assert (r.status, r.body) == (200, {"chat_id": room, "created": False})


async def test_client_cannot_invite_or_rename(api: ApiClient, practice_id: str) -> None:
    staff, client = await api.staff_and_client(practice_id, clients=("c1", "c2"))
    other = await api.session_for(practice_id, client_id="c2")
    room = await api.direct_chat(staff, client_id="c1")
    r = await client.request(
        "POST", f"/_matrix/client/v3/rooms/{quote(room)}/invite", {"user_id": other.user_id}
    )
    assert r.status == 403
    r = await client.request(
        "PUT", f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.name/", {"name": "Mine"}
    )
    assert r.status == 403
    # Staff may not rename either: only the bot names rooms.
    r = await staff.request(
        "PUT", f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.name/", {"name": "Mine"}
    )
    assert r.status == 403


async def test_pin_through_api_shows_in_matrix_tags_and_matrix_tags_show_in_list(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id, clients=("c1", "c2"))
    staff = await api.session_for(practice_id, staff_id="s1")
    first = await api.direct_chat(staff, client_id="c1")
    second = await api.direct_chat(staff, client_id="c2")
    r = await api.call("PUT", f"/chats/{quote(first)}/pin", token=staff.token)
    assert r.status == 200 and r.body["pinned"] is True, r.body
    tags = await staff.request(
        "GET", f"/_matrix/client/v3/user/{quote(staff.user_id)}/rooms/{quote(first)}/tags"
    )
    assert "m.favourite" in tags.body["tags"]

    # A tag set by any Matrix client shows in GET /chats, pinned first.
    r = await staff.request(
        "DELETE",
        f"/_matrix/client/v3/user/{quote(staff.user_id)}/rooms/{quote(first)}/tags/m.favourite",
    )
    assert r.status == 200, r.body
    await staff.request(
        "PUT",
        f"/_matrix/client/v3/user/{quote(staff.user_id)}/rooms/{quote(second)}/tags/m.favourite",
        {"order": 0.1},
    )
    # (Synapse with workers: the process the bridge reads from learns of the change a moment
    # after the writer stored it.)

    async def listed() -> list[tuple[str, bool]]:
        return [(c["chat_id"], c["pinned"]) for c in await _chats(api, staff)]

    async def pinned_first() -> bool:
        return await listed() == [(second, True), (first, False)]

    assert await eventually(pinned_first), await listed()
    pinned = await _chats(api, staff, filter="pinned")
    assert [c["chat_id"] for c in pinned] == [second]

    # Marked unread in a Matrix client (either event type) shows in the unread filter.
    await staff.request(
        "PUT",
        f"/_matrix/client/v3/user/{quote(staff.user_id)}/rooms/{quote(first)}"
        "/account_data/com.famedly.marked_unread",
        {"unread": True},
    )

    async def unread() -> list[str]:
        return [c["chat_id"] for c in await _chats(api, staff, filter="unread")]

    assert await eventually(unread) == [first]
    r = await api.call("DELETE", f"/chats/{quote(first)}/unread", token=staff.token)
    assert r.status == 200
    assert await _chats(api, staff, filter="unread") == []


async def test_hidden_chat_comes_back_on_new_message_and_from_contacts(
    api: ApiClient, practice_id: str
) -> None:
    staff, client = await api.staff_and_client(practice_id)
    room = await api.direct_chat(staff, client_id="c1")
    r = await api.call("PUT", f"/chats/{quote(room)}/hide", token=staff.token)
    assert r.status == 200
    assert await _chats(api, staff) == []
    (hidden,) = await _chats(api, staff, include_hidden="true")
    assert hidden["hidden"] is True

    sent = await client.send(room, {"msgtype": "m.text", "body": "Are you there?"})
    assert sent.status == 200

    async def back() -> list[dict[str, Any]]:
        return await _chats(api, staff)

    (item,) = await eventually(back)
    assert item["chat_id"] == room and item["hidden"] is False and item["unread"] is True

    # Hiding again, then opening the client from the contacts opens the same chat, unhidden.
    await api.call("PUT", f"/chats/{quote(room)}/hide", token=staff.token)
    assert await _chats(api, staff) == []
    contacts = await api.call("GET", "/contacts", token=staff.token)
    (entry,) = [c for c in contacts.body["clients"] if c["client_id"] == "c1"]
    assert [c["chat_id"] for c in entry["chats"]] == [room]
    assert await api.direct_chat(staff, client_id="c1") == room
    assert [c["chat_id"] for c in await _chats(api, staff)] == [room]


async def test_chat_list_orders_by_latest_message(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(practice_id, clients=("c1", "c2"))
    staff = await api.session_for(practice_id, staff_id="s1")
    c2 = await api.session_for(practice_id, client_id="c2")
    first = await api.direct_chat(staff, client_id="c1")
    second = await api.direct_chat(staff, client_id="c2")
    await staff.send(first, {"msgtype": "m.text", "body": "hello"})

    async def first_on_top() -> bool:
        return [c["chat_id"] for c in await _chats(api, staff)] == [first, second]

    await eventually(first_on_top)
    await c2.send(second, {"msgtype": "m.text", "body": "hi"})

    async def second_on_top() -> bool:
        return [c["chat_id"] for c in await _chats(api, staff)] == [second, first]

    await eventually(second_on_top)
    chats = await _chats(api, staff)
    assert chats[0]["unread"] is True and chats[1]["unread"] is False


async def test_delete_leaves_no_trace(api: ApiClient, practice_id: str, bridge: Bridge) -> None:
    staff, client = await api.staff_and_client(
        practice_id, staff=(("own", "owner"), ("s1", "practitioner"))
    )
    room = await api.direct_chat(staff, client_id="c1")
    await client.send(room, {"msgtype": "m.text", "body": "private things"})
    r = await api.call("DELETE", f"/chats/{quote(room)}", token=client.token)
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.STAFF_ONLY")
    r = await api.call("DELETE", f"/chats/{quote(room)}", token=staff.token)
    assert (r.status, r.body) == (200, {"deleted": True})

    admin = bridge.az.intent.api
    from mautrix.api import Method, PathBuilder
    from mautrix.errors import MatrixRequestError

    try:
        await admin.request(Method.GET, PathBuilder(f"/_synapse/admin/v1/rooms/{quote(room)}"))
        raise AssertionError("the room still exists")
    except MatrixRequestError as e:
        assert e.http_status == 404
    assert await _chats(api, staff, include_hidden="true") == []
    assert await _chats(api, client, include_hidden="true") == []
    contacts = await api.call("GET", "/contacts", token=staff.token)
    assert all(c["chats"] == [] for c in contacts.body["clients"])
    audit = await api.call("GET", "/audit", params={"practice_id": practice_id})
    assert any(
        e["action"] == "chat.deleted" and e["target"] == room for e in audit.body["entries"]
    )


async def test_choose_chat_when_own_and_shared_chats_fit(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(
        practice_id, staff=(("p1", "practitioner"), ("p2", "practitioner"), ("t1", "team_member"))
    )
    p1 = await api.session_for(practice_id, staff_id="p1")
    p2 = await api.session_for(practice_id, staff_id="p2")
    t1 = await api.session_for(practice_id, staff_id="t1")
    chat1 = await api.direct_chat(p1, client_id="c1")
    chat2 = await api.direct_chat(p2, client_id="c1")
    for owner, chat in ((p1, chat1), (p2, chat2)):
        r = await api.call(
            "POST", f"/chats/{quote(chat)}/share", {"staff_id": "t1"}, token=owner.token
        )
        assert r.status == 200, r.body
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=t1.token)
    assert (r.status, r.errcode) == (409, "ORG.PRACTICEBRIDGE.CHOOSE_CHAT")
    candidates = {c["chat_id"]: c for c in r.body["candidates"]}
    assert set(candidates) == {chat1, chat2}
    assert candidates[chat1]["owner_staff_id"] == "p1"
    assert candidates[chat1]["shared_with_staff_ids"] == ["t1"]
    r = await api.call(
        "POST", "/chats/direct", {"client_id": "c1", "chat_id": chat2}, token=t1.token
    )
    assert (r.status, r.body) == (200, {"chat_id": chat2, "created": False})
    r = await api.call(
        "POST", "/chats/direct", {"client_id": "c1", "create_new": True}, token=t1.token
    )
    assert r.status == 201 and r.body["chat_id"] not in (chat1, chat2)


async def test_concurrent_direct_requests_give_one_room(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(practice_id)
    staff = await api.session_for(practice_id, staff_id="s1")
    replies = await asyncio.gather(
        *(
            api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
            for _ in range(5)
        )
    )
    assert {r.body["chat_id"] for r in replies} and len({r.body["chat_id"] for r in replies}) == 1
    assert sorted(r.status for r in replies) == [200, 200, 200, 200, 201]


async def test_sharing_refused_by_plan_and_by_setting(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    await api.setup_practice(
        practice_id, plan="solo", staff=(("p1", "practitioner"), ("t1", "team_member"))
    )
    p1 = await api.session_for(practice_id, staff_id="p1")
    t1 = await api.session_for(practice_id, staff_id="t1")
    room = await api.direct_chat(p1, client_id="c1")
    r = await api.call("POST", f"/chats/{quote(room)}/share", {"staff_id": "t1"}, token=p1.token)
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.PLAN_FORBIDS_SHARING")
    assert "plan" in r.body["error"]

    await api.call(
        "PUT",
        f"/practices/{practice_id}",
        {"name": "Sunrise Wellness", "plan": "plus", "timezone": "Europe/Berlin"},
    )
    await bridge.directory_store.set_practice_settings(
        practice_id, {"allow_direct_chat_sharing": False}
    )
    r = await api.call("POST", f"/chats/{quote(room)}/share", {"staff_id": "t1"}, token=p1.token)
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.SHARING_DISABLED")

    # The team member does not see the unshared chat, nor can act on it.
    assert await _chats(api, t1) == []
    r = await api.call("PUT", f"/chats/{quote(room)}/pin", token=t1.token)
    assert (r.status, r.errcode) == (404, "ORG.PRACTICEBRIDGE.UNKNOWN_CHAT")

    await bridge.directory_store.set_practice_settings(
        practice_id, {"allow_direct_chat_sharing": True}
    )
    r = await api.call("POST", f"/chats/{quote(room)}/share", {"staff_id": "t1"}, token=p1.token)
    assert r.status == 200 and r.body["shared_with_staff_ids"] == ["t1"]
    assert [c["chat_id"] for c in await _chats(api, t1)] == [room]
    levels = await t1.state(room, "m.room.power_levels")
    assert levels["users"][t1.user_id] == 50


async def test_group_chat_and_conversion_keep_history(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(
        practice_id, clients=("c1", "c2"), staff=(("p1", "practitioner"), ("t1", "team_member"))
    )
    p1 = await api.session_for(practice_id, staff_id="p1")
    c1 = await api.session_for(practice_id, client_id="c1")
    c2 = await api.session_for(practice_id, client_id="c2")
    r = await api.call(
        "POST",
        "/chats/group",
        {"name": "Yoga", "client_ids": ["c1", "c2"], "staff_ids": ["t1"]},
        token=p1.token,
    )
    assert r.status == 201, r.body
    group = r.body["chat_id"]
    r = await api.call(
        "POST", "/chats/group", {"name": "Mine", "client_ids": ["c2"]}, token=c1.token
    )
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.STAFF_ONLY")

    room = await api.direct_chat(p1, client_id="c1")
    await c1.send(room, {"msgtype": "m.text", "body": "before the group"})
    r = await api.call(
        "POST",
        f"/chats/{quote(room)}/convert",
        {"name": "Family plan", "client_ids": ["c2"], "staff_ids": ["t1"]},
        token=p1.token,
    )
    assert r.status == 200, r.body
    assert r.body["kind"] == "group" and r.body["chat_id"] == room
    name = await c2.state(room, "m.room.name")
    assert name["name"] == "Family plan"
    msgs = await c2.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room)}/messages",
        params={"dir": "b", "limit": "50"},
    )
    bodies = [
        e["content"].get("body") for e in msgs.body["chunk"] if e["type"] == "m.room.message"
    ]
    assert "before the group" in bodies
    kinds = {c["chat_id"]: c["kind"] for c in await _chats(api, c2)}
    assert kinds == {group: "group", room: "group"}
    contacts = await api.call("GET", "/contacts", token=c2.token)
    assert {g["chat_id"] for g in contacts.body["groups"]} == {group, room}


async def test_family_chats_go_through_the_primary(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    await api.setup_practice(practice_id, clients=("parent", "other"))
    r = await api.put_client(practice_id, "kid", name="Kid", family_primary_id="parent")
    assert r.status == 201, r.body
    assert r.body["user_id"] is None
    staff = await api.session_for(practice_id, staff_id="s1")
    parent = await api.session_for(practice_id, client_id="parent")
    room = await api.direct_chat(staff, client_id="kid")
    chat = await parent.state(room, "org.practicebridge.chat")
    assert chat["subject_client_ids"] == ["kid"]
    assert chat["subjects"][0]["name"] == "Kid"
    assert chat["subjects"][0]["family_primary_id"] == "parent"
    sent = await parent.send(room, {"msgtype": "m.text", "body": "About my kid"})
    assert sent.status == 200

    contacts = await api.call("GET", "/contacts", token=parent.token)
    (me,) = contacts.body["clients"]
    assert me["client_id"] == "parent"
    (kid,) = me["family_members"]
    assert kid["client_id"] == "kid" and [c["chat_id"] for c in kid["chats"]] == [room]
    (item,) = await _chats(api, parent)
    assert item["subject_client_ids"] == ["kid"]

    # The kid moves to another primary: the chat's client member moves, history kept.
    other = await api.session_for(practice_id, client_id="other")
    r = await api.put_client(practice_id, "kid", name="Kid", family_primary_id="other")
    assert r.status == 200, r.body
    assert await _chats(api, parent) == []
    assert [c["chat_id"] for c in await _chats(api, other)] == [room]
    msgs = await other.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room)}/messages",
        params={"dir": "b", "limit": "50"},
    )
    assert "About my kid" in [e["content"].get("body") for e in msgs.body["chunk"]]
    members = await staff.request("GET", f"/_matrix/client/v3/rooms/{quote(room)}/joined_members")
    assert other.user_id in members.body["joined"]
    assert parent.user_id not in members.body["joined"]


async def test_staff_see_when_the_client_last_read(api: ApiClient, practice_id: str) -> None:
    staff, client = await api.staff_and_client(practice_id)
    room = await api.direct_chat(staff, client_id="c1")
    sent = await staff.send(room, {"msgtype": "m.text", "body": "Your plan is ready"})
    (item,) = await _chats(api, staff)
    (member,) = [m for m in item["members"] if m["kind"] == "client"]
    assert member["last_read_ts"] is None
    r = await client.request(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room)}/receipt/m.read/{quote(sent.body['event_id'])}",
        {},
    )
    assert r.status == 200

    async def read_marker() -> Any:
        (item,) = await _chats(api, staff)
        (member,) = [m for m in item["members"] if m["kind"] == "client"]
        return member["last_read_ts"]

    assert await eventually(read_marker) >= item["last_message_ts"]
    # Clients are not shown staff read markers.
    (client_item,) = await _chats(api, client)
    assert all("last_read_ts" not in m for m in client_item["members"])


async def test_contacts_follow_every_change_of_the_practices_clients_and_chats(
    api: ApiClient, practice_id: str
) -> None:
    """Contacts are kept made per person between changes: each change to a client or a chat
    shows on the next contacts."""
    await api.setup_practice(practice_id, clients=("c1", "c2"))
    staff = await api.session_for(practice_id, staff_id="s1")

    async def contacts() -> dict[str, Any]:
        r = await api.call("GET", "/contacts", token=staff.token)
        assert r.status == 200, r.body
        return {c["client_id"]: c for c in r.body["clients"]}

    assert [c["chats"] for c in (await contacts()).values()] == [[], []]
    room = await api.direct_chat(staff, client_id="c1")
    assert [c["chat_id"] for c in (await contacts())["c1"]["chats"]] == [room]
    r = await api.put_client(practice_id, "c2", name="Client renamed")
    assert r.status == 200, r.body
    assert (await contacts())["c2"]["name"] == "Client renamed"
    r = await api.put_client(practice_id, "c3")
    assert r.status == 201, r.body
    assert sorted(await contacts()) == ["c1", "c2", "c3"]
    r = await api.call("DELETE", f"/chats/{quote(room)}", token=staff.token)
    assert r.status == 200, r.body
    assert (await contacts())["c1"]["chats"] == []
