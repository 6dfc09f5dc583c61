"""Nothing crosses practices, and an unshared chat does not exist for those outside it."""

from __future__ import annotations

from urllib.parse import quote

from tests.clients import ApiClient, MatrixClient

# Every chat endpoint that names a chat: method, path suffix, body.
CHAT_ENDPOINTS = [
    ("PUT", "/pin", None),
    ("DELETE", "/pin", None),
    ("PUT", "/hide", None),
    ("DELETE", "/hide", None),
    ("PUT", "/unread", None),
    ("DELETE", "/unread", None),
    ("POST", "/share", {"staff_id": "t1"}),
    ("POST", "/convert", {"name": "Group", "client_ids": [], "staff_ids": []}),
    ("DELETE", "", None),
]


async def _everyone(api: ApiClient, practice: str, other: str) -> dict[str, MatrixClient]:
    await api.setup_practice(
        practice,
        clients=("c1", "c2"),
        staff=(("own", "owner"), ("p1", "practitioner"), ("t1", "team_member")),
    )
    await api.setup_practice(other, clients=("x1",), staff=(("xp", "owner"),))
    return {
        "owner": await api.session_for(practice, staff_id="own"),
        "practitioner": await api.session_for(practice, staff_id="p1"),
        "team_member": await api.session_for(practice, staff_id="t1"),
        "other_client": await api.session_for(practice, client_id="c2"),
        "client": await api.session_for(practice, client_id="c1"),
        "foreign_staff": await api.session_for(other, staff_id="xp"),
        "foreign_client": await api.session_for(other, client_id="x1"),
    }


async def test_outsiders_get_the_same_not_found_as_for_a_missing_chat(
    api: ApiClient, practice_id: str
) -> None:
    who = await _everyone(api, practice_id, practice_id + "x")
    room = await api.direct_chat(who["practitioner"], client_id="c1")
    missing = "!doesnotexist123"
    outsiders = ["team_member", "other_client", "foreign_staff", "foreign_client"]
    for name in outsiders:
        for chat_id in (room, missing):
            for method, suffix, body in CHAT_ENDPOINTS:
                r = await api.call(
                    method, f"/chats/{quote(chat_id)}{suffix}", body, token=who[name].token
                )
                # Clients are refused staff-only actions before any chat is looked up.
                assert (r.status, r.errcode) in (
                    (404, "ORG.PRACTICEBRIDGE.UNKNOWN_CHAT"),
                    (403, "ORG.PRACTICEBRIDGE.STAFF_ONLY"),
                ), (name, method, suffix, chat_id, r.body)
                if chat_id == room:
                    # Same answer as for a chat that does not exist: no leak of existence.
                    r2 = await api.call(
                        method, f"/chats/{quote(missing)}{suffix}", body, token=who[name].token
                    )
                    assert (r2.status, r2.errcode) == (r.status, r.errcode)
        r = await api.call(
            "POST", "/chats/direct", {"client_id": "c1", "chat_id": room}, token=who[name].token
        )
        assert r.status in (403, 404, 400) and r.errcode, (name, r.body)
        assert r.body.get("chat_id") != room
        r = await api.call(
            "GET", "/chats", token=who[name].token, params={"include_hidden": "true"}
        )
        assert room not in [c["chat_id"] for c in r.body["chats"]], name
        r = await api.call("GET", "/contacts", token=who[name].token)
        assert room not in str(r.body), name

    # Foreign staff cannot reach this practice's clients or staff at all.
    foreign = who["foreign_staff"].token
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=foreign)
    assert (r.status, r.errcode) == (404, "ORG.PRACTICEBRIDGE.UNKNOWN_CLIENT")
    r = await api.call("POST", "/chats/group", {"name": "G", "client_ids": ["c1"]}, token=foreign)
    assert (r.status, r.errcode) == (404, "ORG.PRACTICEBRIDGE.UNKNOWN_CLIENT")
    r = await api.call("GET", "/contacts", token=foreign)
    names = str(r.body)
    assert "Client c1" not in names and "Staff p1" not in names
    r = await api.call(
        "POST", "/chats/direct", {"staff_id": "p1"}, token=who["foreign_client"].token
    )
    assert (r.status, r.errcode) == (404, "ORG.PRACTICEBRIDGE.UNKNOWN_STAFF")


async def test_members_and_owner_may_act_and_backend_may_act_for_a_user(
    api: ApiClient, practice_id: str
) -> None:
    who = await _everyone(api, practice_id, practice_id + "x")
    room = await api.direct_chat(who["practitioner"], client_id="c1")
    # The client may pin their own chat; the backend may do it on their behalf.
    r = await api.call("PUT", f"/chats/{quote(room)}/pin", token=who["client"].token)
    assert r.status == 200
    r = await api.call(
        "PUT", f"/chats/{quote(room)}/hide", params={"user_id": who["client"].user_id}
    )
    assert r.status == 200
    r = await api.call(
        "GET", "/chats", params={"user_id": who["client"].user_id, "include_hidden": "true"}
    )
    (item,) = r.body["chats"]
    assert item["pinned"] and item["hidden"]
    # A client may not share, convert or delete.
    for method, suffix, body in CHAT_ENDPOINTS[6:]:
        r = await api.call(
            method, f"/chats/{quote(room)}{suffix}", body, token=who["client"].token
        )
        assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.STAFF_ONLY"), suffix
    # The practice owner is not in the chat: it does not exist for them either.
    r = await api.call("DELETE", f"/chats/{quote(room)}", token=who["owner"].token)
    assert (r.status, r.errcode) == (404, "ORG.PRACTICEBRIDGE.UNKNOWN_CHAT")
    # A user token may not act for someone else.
    r = await api.call(
        "GET", "/chats", token=who["practitioner"].token, params={"user_id": who["client"].user_id}
    )
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN")
    # The backend must name the user for user endpoints.
    r = await api.call("GET", "/chats")
    assert (r.status, r.errcode) == (400, "M_MISSING_PARAM")
