"""Opening many direct chats in one request (``POST /chats/direct/bulk``, docs/api.md)."""

from __future__ import annotations

from urllib.parse import quote

from bridge.constants import BULK_DIRECT_MAX
from tests.clients import ApiClient

PREFIX = "ORG.PRACTICEBRIDGE."
BULK = "/chats/direct/bulk"


async def test_bulk_opens_each_clients_chat_and_says_why_not_for_the_others(
    api: ApiClient, practice_id: str
) -> None:
    clients = tuple(f"c{i}" for i in range(1, 7))
    await api.setup_practice(practice_id, clients=clients)
    r = await api.call(
        "PUT",
        f"/practices/{practice_id}/clients/new",
        {"name": "New", "email": "new@example.com", "activated": False, "portal_access": True},
    )
    assert r.status == 201, r.body
    staff = await api.session_for(practice_id, staff_id="s1")
    before = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    assert before.status == 201, before.body

    asked = ["c1", "c2", "nobody", "c3", "new", "c2", "c4", "c5", "c6"]
    r = await api.call("POST", BULK, {"client_ids": asked}, token=staff.token)
    assert r.status == 200, r.body
    results = r.body["results"]
    # One result per client, in the order asked; a client named twice is opened once.
    assert [item["client_id"] for item in results] == list(dict.fromkeys(asked))
    by_client = {item["client_id"]: item for item in results}
    assert by_client["c1"] == {
        "client_id": "c1",
        "chat_id": before.body["chat_id"],
        "created": False,
    }
    assert by_client["nobody"]["errcode"] == PREFIX + "UNKNOWN_CLIENT"
    assert by_client["new"]["errcode"] == PREFIX + "CLIENT_NOT_ACTIVATED"
    assert by_client["nobody"]["error"] and "chat_id" not in by_client["nobody"]
    opened = {c: by_client[c]["chat_id"] for c in ("c2", "c3", "c4", "c5", "c6")}
    assert all(by_client[c]["created"] for c in opened)
    assert len(set(opened.values())) == len(opened)

    # Each is a real chat: both in the room, in both m.direct, in the practitioner's list.
    direct = await staff.request(
        "GET", f"/_matrix/client/v3/user/{quote(staff.user_id)}/account_data/m.direct"
    )
    listed = {
        item["chat_id"]
        for item in (await api.call("GET", "/chats", token=staff.token)).body["chats"]
    }
    for client_id, room in opened.items():
        client = await api.session_for(practice_id, client_id=client_id)
        members = await client.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room)}/joined_members"
        )
        assert members.status == 200, members.body
        assert set(members.body["joined"]) >= {staff.user_id, client.user_id}
        assert room in direct.body[client.user_id]
        theirs = await client.request(
            "GET", f"/_matrix/client/v3/user/{quote(client.user_id)}/account_data/m.direct"
        )
        assert theirs.body[staff.user_id] == [room]
        assert room in listed

    # Asking again opens the same chats; POST /chats/direct agrees.
    again = await api.call("POST", BULK, {"client_ids": list(opened)}, token=staff.token)
    assert again.status == 200, again.body
    assert {i["client_id"]: (i["chat_id"], i["created"]) for i in again.body["results"]} == {
        c: (room, False) for c, room in opened.items()
    }
    one = await api.call("POST", "/chats/direct", {"client_id": "c4"}, token=staff.token)
    assert (one.status, one.body["chat_id"]) == (200, opened["c4"])


async def test_bulk_is_for_staff_and_takes_a_bounded_list(
    api: ApiClient, practice_id: str
) -> None:
    staff, client = await api.staff_and_client(practice_id)
    r = await api.call("POST", BULK, {"client_ids": ["c1"]}, token=client.token)
    assert (r.status, r.errcode) == (403, PREFIX + "STAFF_ONLY")
    for body, errcode in [
        ({}, "M_MISSING_PARAM"),
        ({"client_ids": []}, "M_INVALID_PARAM"),
        ({"client_ids": "c1"}, "M_INVALID_PARAM"),
        ({"client_ids": ["c 1"]}, "M_INVALID_PARAM"),
        ({"client_ids": [f"c{i}" for i in range(BULK_DIRECT_MAX + 1)]}, "M_INVALID_PARAM"),
    ]:
        r = await api.call("POST", BULK, body, token=staff.token)
        assert (r.status, r.errcode) == (400, errcode), (body, r.body)
        assert r.body["param"] == "client_ids", r.body
