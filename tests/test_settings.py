"""GET|PUT /settings, policy propagation, and per-client direct chat access."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from bridge.app import Bridge
from tests.clients import ApiClient, MatrixClient, eventually


async def _settings(api: ApiClient, who: MatrixClient, patch: Any = None) -> Any:
    if patch is None:
        return await api.call("GET", "/settings", token=who.token)
    return await api.call("PUT", "/settings", patch, token=who.token)


async def test_defaults_and_user_preferences_reach_account_data(
    api: ApiClient, practice_id: str
) -> None:
    staff, client = await api.staff_and_client(practice_id)
    r = await _settings(api, staff)
    assert r.status == 200
    assert r.body["enter_key"] == "send" and r.body["open_recent_chat"] is True
    assert r.body["autoresponder"] == {"enabled": False, "message": "", "periods": []}
    assert r.body["practice"]["client_message_limit"] is None
    assert r.body["practice_applied"] is True
    r = await _settings(api, client)
    assert "autoresponder" not in r.body

    r = await _settings(api, client, {"enter_key": "newline", "portal_alerts": False})
    assert r.status == 200 and r.body["enter_key"] == "newline"
    prefs = await client.request(
        "GET",
        f"/_matrix/client/v3/user/{quote(client.user_id)}/account_data/"
        "org.practicebridge.preferences",
    )
    assert prefs.body == {"enter_key": "newline", "open_recent_chat": True, "portal_alerts": False}
    # A later partial PUT merges.
    r = await _settings(api, client, {"open_recent_chat": False})
    assert r.body["enter_key"] == "newline" and r.body["open_recent_chat"] is False


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"enter_key": "shift"}, "enter_key"),
        ({"portal_alerts": "yes"}, "portal_alerts"),
        ({"colour": "blue"}, "colour"),
        ({"autoresponder": {"enabled": True, "message": ""}}, "autoresponder.message"),
        ({"autoresponder": {"message": "x" * 2001}}, "autoresponder.message"),
        ({"autoresponder": {"message": "away\x07"}}, "autoresponder.message"),
        (
            {"autoresponder": {"periods": [{"day": "mon", "start": "09:00", "end": "10:00"}] * 6}},
            "autoresponder.periods",
        ),
        (
            {"autoresponder": {"periods": [{"day": "mon", "start": "18:00", "end": "09:00"}]}},
            "autoresponder.periods[0].start",
        ),
        (
            {"autoresponder": {"periods": [{"day": "funday", "start": "09:00", "end": "10:00"}]}},
            "autoresponder.periods[0].day",
        ),
        (
            {"autoresponder": {"periods": [{"day": "mon", "start": "9am", "end": "10:00"}]}},
            "autoresponder.periods[0].start",
        ),
        (
            {"autoresponder": {"periods": [{"day": "mon", "start": "09:00", "end": "25:00"}]}},
            "autoresponder.periods[0].end",
        ),
        ({"autoresponder": "on"}, "autoresponder"),
        ({"practice": {"client_message_limit": 0}}, "practice.client_message_limit"),
        ({"practice": {"client_message_limit": 10**9}}, "practice.client_message_limit"),
        ({"practice": {"client_message_limit": True}}, "practice.client_message_limit"),
        ({"practice": {"client_message_limit": "500"}}, "practice.client_message_limit"),
        (
            {"practice": {"email_include_content": {"staff": 1}}},
            "practice.email_include_content.staff",
        ),
        (
            {"practice": {"email_include_content": {"family": True}}},
            "practice.email_include_content.family",
        ),
        ({"practice": {"unknown": True}}, "practice.unknown"),
    ],
)
async def test_invalid_settings_are_refused_and_change_nothing(
    api: ApiClient, practice_id: str, patch: dict[str, Any], param: str
) -> None:
    await api.setup_practice(practice_id, staff=(("own", "owner"),))
    owner = await api.session_for(practice_id, staff_id="own")
    before = (await _settings(api, owner)).body
    r = await _settings(api, owner, patch)
    assert (r.status, r.errcode, r.body.get("param")) == (400, "M_INVALID_PARAM", param)
    assert (await _settings(api, owner)).body == before


async def test_practice_settings_are_owner_only(api: ApiClient, practice_id: str) -> None:
    staff, client = await api.staff_and_client(practice_id)
    for who in (staff, client):
        r = await _settings(api, who, {"practice": {"clients_may_export": True}})
        assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.OWNER_ONLY")
    r = await _settings(api, client, {"autoresponder": {"enabled": False}})
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.STAFF_ONLY")
    r = await api.call("PUT", "/settings", raw=b"[1]", token=staff.token)
    assert (r.status, r.errcode) == (400, "M_BAD_JSON")


async def test_limit_change_reaches_every_room_of_the_practice(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    await api.setup_practice(
        practice_id, clients=("c1", "c2", "c3"), staff=(("own", "owner"), ("p1", "practitioner"))
    )
    owner = await api.session_for(practice_id, staff_id="own")
    p1 = await api.session_for(practice_id, staff_id="p1")
    rooms = []
    for cid in ("c1", "c2"):
        r = await api.call("POST", "/chats/direct", {"client_id": cid}, token=p1.token)
        rooms.append(r.body["chat_id"])
    r = await api.call(
        "POST", "/chats/group", {"name": "Group", "client_ids": ["c1", "c3"]}, token=owner.token
    )
    rooms.append(r.body["chat_id"])
    r = await _settings(api, owner, {"practice": {"client_message_limit": 280}})
    assert r.status == 200 and r.body["practice"]["client_message_limit"] == 280

    async def applied() -> bool:
        return bool((await _settings(api, owner)).body["practice_applied"])

    await eventually(applied)
    for room in rooms:
        r = (
            await p1.request(
                "GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/org.practicebridge.policy/"
            )
            if room != rooms[2]
            else await owner.request(
                "GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/org.practicebridge.policy/"
            )
        )
        assert r.body["client_message_limit"] == 280, room
    audit = await api.call("GET", "/audit", params={"practice_id": practice_id})
    assert any(e["action"] == "practice.settings" for e in audit.body["entries"])


async def test_policy_propagation_resumes_after_a_restart(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    await api.setup_practice(practice_id, clients=("c1", "c2"))
    p1 = await api.session_for(practice_id, staff_id="s1")
    rooms = []
    for cid in ("c1", "c2"):
        r = await api.call("POST", "/chats/direct", {"client_id": cid}, token=p1.token)
        rooms.append(r.body["chat_id"])
    # The change is recorded but the worker is not running (as if the bridge stopped).
    await bridge.policy.stop()
    practice = await bridge.directory_store.get_practice(practice_id)
    assert practice is not None
    await bridge.settings_store.save_practice(
        practice_id, practice.settings | {"client_message_limit": 99}, policy_changed=True
    )
    assert await bridge.settings_store.count_stale(practice_id) == 2
    bridge.policy.start()  # what start-up does: it finds the stale chats by itself

    async def done() -> bool:
        return await bridge.settings_store.count_stale(practice_id) == 0

    await eventually(done)
    for room in rooms:
        r = await p1.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/org.practicebridge.policy/"
        )
        assert r.body["client_message_limit"] == 99


async def test_direct_chat_access_off_hides_history_and_on_brings_it_back(
    api: ApiClient, practice_id: str
) -> None:
    staff, client = await api.staff_and_client(practice_id)
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    room = r.body["chat_id"]
    await client.send(room, {"msgtype": "m.text", "body": "my question"})
    await staff.send(room, {"msgtype": "m.text", "body": "my answer"})

    path = f"/practices/{practice_id}/clients/c1/direct-chat"
    r = await api.call("PUT", path, {"enabled": False}, token=client.token)
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.STAFF_ONLY")
    r = await api.call("PUT", path, {"enabled": False}, token=staff.token)
    assert r.status == 200 and r.body["direct_chat_access"] is False

    sync = await client.request("GET", "/_matrix/client/v3/sync", params={"timeout": "0"})
    assert room not in sync.body.get("rooms", {}).get("join", {})
    assert room not in sync.body.get("rooms", {}).get("leave", {})
    r = await client.request(
        "GET", f"/_matrix/client/v3/rooms/{quote(room)}/messages", params={"dir": "b"}
    )
    assert r.status == 403
    r = await api.call("GET", "/chats", token=client.token, params={"include_hidden": "true"})
    assert r.body["chats"] == []
    r = await api.call("POST", "/chats/direct", {"staff_id": "s1"}, token=client.token)
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.DIRECT_CHAT_DISABLED")
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.DIRECT_CHAT_DISABLED")
    policy = await staff.request(
        "GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/org.practicebridge.policy/"
    )
    assert policy.body["clients_may_send"] is False
    # The practice keeps everything.
    r = await staff.request(
        "GET", f"/_matrix/client/v3/rooms/{quote(room)}/messages", params={"dir": "b"}
    )
    assert "my question" in [e["content"].get("body") for e in r.body["chunk"]]

    r = await api.call("PUT", path, {"enabled": True})
    assert r.status == 200 and r.body["direct_chat_access"] is True
    r = await client.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room)}/messages",
        params={"dir": "b", "limit": "50"},
    )
    assert r.status == 200
    bodies = [e["content"].get("body") for e in r.body["chunk"]]
    assert "my question" in bodies and "my answer" in bodies
    r = await api.call("GET", "/chats", token=client.token)
    assert [c["chat_id"] for c in r.body["chats"]] == [room]


async def test_new_clients_start_without_direct_chats_when_the_practice_says_so(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id, staff=(("own", "owner"),))
    owner = await api.session_for(practice_id, staff_id="own")
    r = await _settings(api, owner, {"practice": {"disable_direct_chat_for_new_clients": True}})
    assert r.status == 200
    r = await api.put_client(practice_id, "new", name="New")
    assert r.status == 201 and r.body["direct_chat_access"] is False
    # The existing client keeps theirs.
    r = await api.put_client(practice_id, "c1")
    assert r.body["direct_chat_access"] is True
