"""The chat list across pages, and flags set in other Matrix apps (docs/chats.md#the-chat-list)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.clients import ApiClient, MatrixClient, eventually

pytestmark = pytest.mark.synapse_workers

CLIENTS = ("c1", "c2", "c3", "c4", "c5")


async def _page(
    api: ApiClient, who: MatrixClient, **params: str
) -> tuple[list[dict[str, Any]], str | None]:
    r = await api.call("GET", "/chats", token=who.token, params=params)
    assert r.status == 200, r.body
    return list(r.body["chats"]), r.body.get("next_batch")


async def _pages(
    api: ApiClient, who: MatrixClient, limit: int = 2, **params: str
) -> list[list[dict[str, Any]]]:
    """Every page of one pass through the list."""
    pages = []
    start: str | None = None
    while True:
        query = {"limit": str(limit), **params} | ({"from": start} if start else {})
        chats, start = await _page(api, who, **query)
        pages.append(chats)
        if start is None:
            return pages


def _ids(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [c["chat_id"] for page in pages for c in page]


async def _practice_with_chats(
    api: ApiClient, practice_id: str
) -> tuple[MatrixClient, dict[str, MatrixClient], list[str]]:
    """Five chats of s1, the newest message first in c5's chat: [c5's, c4's, ..., c1's]."""
    await api.setup_practice(practice_id, clients=CLIENTS)
    staff = await api.session_for(practice_id, staff_id="s1")
    clients = {c: await api.session_for(practice_id, client_id=c) for c in CLIENTS}
    rooms = []
    for c in CLIENTS:
        r = await api.call("POST", "/chats/direct", {"client_id": c}, token=staff.token)
        assert r.status == 201, r.body
        rooms.append(r.body["chat_id"])
        sent = await clients[c].send(rooms[-1], {"msgtype": "m.text", "body": f"hello from {c}"})
        assert sent.status == 200, sent.body
    newest_first = rooms[::-1]

    async def ordered() -> bool:
        return _ids(await _pages(api, staff, limit=50)) == newest_first

    assert await eventually(ordered, timeout=30)
    return staff, clients, newest_first


async def test_a_chat_written_in_while_paging_is_listed_once_then_on_top(
    api: ApiClient, practice_id: str
) -> None:
    staff, clients, rooms = await _practice_with_chats(api, practice_id)
    first, start = await _page(api, staff, limit="2")
    assert [c["chat_id"] for c in first] == rooms[:2] and start is not None
    # c5's chat (already shown), then c1's (the last of the list) get a message while paging.
    await clients["c5"].send(rooms[0], {"msgtype": "m.text", "body": "and me"})
    await clients["c1"].send(rooms[4], {"msgtype": "m.text", "body": "still there?"})

    async def moved() -> bool:
        chats, _ = await _page(api, staff, limit="2")
        return [c["chat_id"] for c in chats] == [rooms[4], rooms[0]]

    assert await eventually(moved, timeout=30)
    rest: list[list[dict[str, Any]]] = []
    while start is not None:
        chats, start = await _page(api, staff, limit="2", **{"from": start})
        rest.append(chats)
    # The pass lists every chat exactly once, in the order it began with.
    assert [c["chat_id"] for c in first] + _ids(rest) == rooms
    # The next pass has the chat written in on top, then the others by their last message.
    assert _ids(await _pages(api, staff)) == [rooms[4], rooms[0], *rooms[1:4]]


async def test_pins_and_hidden_chats_across_pages(api: ApiClient, practice_id: str) -> None:
    staff, _, rooms = await _practice_with_chats(api, practice_id)
    oldest, middle = rooms[4], rooms[2]
    r = await api.call("PUT", f"/chats/{quote(oldest)}/pin", token=staff.token)
    assert r.status == 200, r.body
    r = await api.call("PUT", f"/chats/{quote(middle)}/hide", token=staff.token)
    assert r.status == 200, r.body

    pages = await _pages(api, staff)
    assert [len(p) for p in pages] == [2, 2]
    assert _ids(pages) == [oldest, rooms[0], rooms[1], rooms[3]]
    assert pages[0][0]["pinned"] is True
    assert not any(c["pinned"] for c in pages[0][1:] + pages[1])

    with_hidden = await _pages(api, staff, include_hidden="true")
    assert _ids(with_hidden) == [oldest, *rooms[:4]]
    assert [c["chat_id"] for p in with_hidden for c in p if c["hidden"]] == [middle]
    assert _ids(await _pages(api, staff, limit=1, filter="pinned")) == [oldest]


async def test_flags_set_in_another_matrix_app_show_in_the_first_and_the_next_list(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id, clients=CLIENTS)
    staff = await api.session_for(practice_id, staff_id="s1")
    rooms = []
    for c in CLIENTS:
        r = await api.call("POST", "/chats/direct", {"client_id": c}, token=staff.token)
        assert r.status == 201, r.body
        rooms.append(r.body["chat_id"])
    me = quote(staff.user_id)

    async def put(room: str, what: str, body: dict[str, Any]) -> None:
        r = await staff.request(
            "PUT", f"/_matrix/client/v3/user/{me}/rooms/{quote(room)}/{what}", body
        )
        assert r.status == 200, r.body

    # Before the bridge ever listed this person's chats: set with their own token, as any
    # Matrix app does (a hidden tag without a time, as another app writes it).
    await put(rooms[0], "tags/m.favourite", {"order": 0.2})
    await put(rooms[1], "tags/org.practicebridge.hidden", {})
    await put(rooms[2], "account_data/m.marked_unread", {"unread": True})

    async def listed() -> dict[str, tuple[bool, bool, bool]]:
        pages = await _pages(api, staff, include_hidden="true")
        return {c["chat_id"]: (c["pinned"], c["hidden"], c["unread"]) for p in pages for c in p}

    async def first_shows_them() -> bool:
        flags = await listed()
        return (
            flags[rooms[0]] == (True, False, False)
            and flags[rooms[1]][1]
            and flags[rooms[2]] == (False, False, True)
        )

    # (Synapse with workers: the process the bridge reads from learns of them a moment later.)
    assert await eventually(first_shows_them, timeout=30)
    assert _ids(await _pages(api, staff))[0] == rooms[0]

    # Changed again in the other app: unpinned, unhidden, read; another marked unread the
    # way some apps write it.
    r = await staff.request(
        "DELETE", f"/_matrix/client/v3/user/{me}/rooms/{quote(rooms[0])}/tags/m.favourite"
    )
    assert r.status == 200, r.body
    r = await staff.request(
        "DELETE",
        f"/_matrix/client/v3/user/{me}/rooms/{quote(rooms[1])}/tags/org.practicebridge.hidden",
    )
    assert r.status == 200, r.body
    await put(rooms[2], "account_data/m.marked_unread", {"unread": False})
    await put(rooms[3], "account_data/com.famedly.marked_unread", {"unread": True})

    async def next_shows_them() -> bool:
        flags = await listed()
        return (
            flags[rooms[0]] == (False, False, False)
            and flags[rooms[1]] == (False, False, False)
            and flags[rooms[2]] == (False, False, False)
            and flags[rooms[3]] == (False, False, True)
        )

    assert await eventually(next_shows_them, timeout=30)
    unread, _ = await _page(api, staff, filter="unread")
    assert [c["chat_id"] for c in unread] == [rooms[3]]


async def test_a_page_cursor_is_checked(api: ApiClient, practice_id: str) -> None:
    staff, _, rooms = await _practice_with_chats(api, practice_id)
    _, start = await _page(api, staff, limit="2")
    assert start is not None
    for params in (
        {"from": "not-a-cursor"},
        {"from": start, "filter": "unread"},  # a cursor of another view
        {"from": start, "include_hidden": "true"},
    ):
        r = await api.call("GET", "/chats", token=staff.token, params=params)
        assert r.status == 400 and r.body["errcode"] == "M_INVALID_PARAM", r.body
        assert r.body["param"] == "from"
    for limit in ("0", "1001", "ten"):
        r = await api.call("GET", "/chats", token=staff.token, params={"limit": limit})
        assert r.status == 400 and r.body["param"] == "limit", r.body
    # Another session of the same person goes on with the same pass.
    other = await api.session_for(practice_id, staff_id="s1")
    chats, last = await _page(api, other, limit="2", **{"from": start})
    assert [c["chat_id"] for c in chats] == rooms[2:4]
    assert last is not None
    chats, end = await _page(api, staff, limit="2", **{"from": last})
    assert [c["chat_id"] for c in chats] == rooms[4:] and end is None
    # The pass ended with its last page; its cursors still go on after the chat they last
    # listed, in the order of now.
    chats, _ = await _page(api, staff, limit="2", **{"from": start})
    assert [c["chat_id"] for c in chats] == rooms[2:4]
