"""Defence in depth: the practice rules enforced by the bridge when Synapse has no module.

A second real Synapse, with the same registration shape but no ``modules:``, and a bridge bound
to it. Every violation a client gets through is redacted (or undone) by the bot and explained in
a notice that mentions the sender and never quotes them, exactly once, even when the event or
the bridge's work is repeated.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.chats import layout
from bridge.rules.posthoc import RULE_KEY
from tests.clients import (
    LIMIT,
    POLICY,
    ApiClient,
    HomeserverInfo,
    MatrixClient,
    chat_with_limit,
    eventually,
)
from tests.conftest import synapse_process

# The practice: its owner, a second practitioner, and the client c1.
STAFF = (("own", "owner"), ("s2", "practitioner"))


@pytest.fixture(scope="module")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeserverInfo]:
    """A Synapse built like the session's, but one that cannot load the practice module; the
    ``bridge`` and ``api`` fixtures of this module are bound to it."""
    with synapse_process(tmp_path_factory.mktemp("bare-synapse"), with_modules=False) as hs:
        yield hs


def _text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


def _marked(length: int) -> str:
    mark = uuid.uuid4().hex[:8]
    return (mark + "x" * length)[:length]


async def _notices(mc: MatrixClient, room: str, event_id: str) -> list[dict[str, Any]]:
    """The bot's notices about one offending event."""
    return [
        ev
        for ev in await mc.timeline(room, 200)
        if ev["type"] == "m.room.message"
        and ev["content"].get(RULE_KEY, {}).get("event_id") == event_id
    ]


async def _redactions(mc: MatrixClient, room: str, event_id: str) -> list[dict[str, Any]]:
    return [
        ev
        for ev in await mc.timeline(room, 200)
        if ev["type"] == "m.room.redaction"
        and event_id in (ev.get("redacts"), ev["content"].get("redacts"))
    ]


async def _event(mc: MatrixClient, room: str, event_id: str) -> dict[str, Any]:
    r = await mc.request("GET", f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}")
    assert r.status == 200, r.body
    return dict(r.body)


async def _explained(mc: MatrixClient, room: str, event_id: str) -> dict[str, Any]:
    """Wait for the one notice about ``event_id``; return it."""

    async def found() -> list[dict[str, Any]]:
        return await _notices(mc, room, event_id)

    (notice,) = await eventually(found)
    return notice


async def _redacted(mc: MatrixClient, room: str, event_id: str) -> bool:
    ev = await _event(mc, room, event_id)
    return "redacted_because" in ev.get("unsigned", {})


def _assert_notice(notice: dict[str, Any], bot: str, sender: str, errcode: str) -> None:
    assert notice["sender"] == bot
    content = notice["content"]
    assert content["msgtype"] == "m.notice"
    assert content["m.mentions"] == {"user_ids": [sender]}
    assert sender in content["body"] and sender in content["formatted_body"]
    assert content[RULE_KEY]["errcode"] == errcode


async def test_without_the_module_the_bridge_says_so_and_enforces_after_the_fact(
    bridge: Bridge, api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    assert bridge.module_active is False
    assert bridge.rules.enforcing is True
    assert any(
        "Synapse module not loaded: the bridge enforces the rules after the fact" in r.message
        for r in caplog.get_records("setup")
    )
    async with aiohttp.ClientSession() as session:
        url = api.homeserver.url + "/_synapse/client/org.practicebridge/module"
        async with session.get(url) as resp:
            assert resp.status == 404


async def test_over_limit_client_message_is_redacted_and_explained(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id, staff=STAFF)
    at_limit = await client.sent(room, _text(_marked(LIMIT)))
    emoji = await client.sent(room, _text("😀" * LIMIT))  # code points, not bytes
    long_staff = await owner.sent(room, _text(_marked(5_000)))
    over_text = _marked(LIMIT + 1)
    over = await client.sent(room, _text(over_text))

    notice = await _explained(owner, room, over)
    _assert_notice(
        notice, bridge.mapper.bot_mxid, client.user_id, "ORG.PRACTICEBRIDGE.MESSAGE_TOO_LONG"
    )
    assert notice["content"][RULE_KEY]["max_length"] == LIMIT
    assert str(LIMIT) in notice["content"]["body"]
    assert over_text not in str(notice["content"])
    assert await _redacted(owner, room, over)
    assert (await _event(owner, room, over))["content"] == {}
    # Earlier in the room's order, so already judged: within the rules, left alone.
    for fine in (at_limit, emoji, long_staff):
        assert not await _redacted(owner, room, fine)
    # The client sees the notice too, addressed to them.
    assert await _notices(client, room, over)


async def test_off_the_allow_list_or_long_formatted_text_is_redacted_and_explained(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    """The same shared rules as the module's: the allow-list, and what a client wrote."""
    owner, client, room = await chat_with_limit(api, practice_id, staff=STAFF)
    poll = await client.sent(room, {"body": "Which day?"}, "m.poll.start")
    hidden = _marked(LIMIT + 1)
    formatted = await client.sent(
        room,
        {"msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html"}
        | {"formatted_body": f"<b>{hidden}</b>"},
    )
    notice = await _explained(owner, room, poll)
    _assert_notice(
        notice, bridge.mapper.bot_mxid, client.user_id, "ORG.PRACTICEBRIDGE.EVENT_NOT_ALLOWED"
    )
    assert await _redacted(owner, room, poll)
    notice = await _explained(owner, room, formatted)
    _assert_notice(
        notice, bridge.mapper.bot_mxid, client.user_id, "ORG.PRACTICEBRIDGE.MESSAGE_TOO_LONG"
    )
    assert hidden not in str(notice["content"])
    assert await _redacted(owner, room, formatted)


async def test_over_limit_edit_is_redacted_and_the_original_stays(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id, staff=STAFF)
    original = await client.sent(room, _text("short"))
    fine_edit = await client.sent(
        room,
        {
            "msgtype": "m.text",
            "body": "* " + _marked(LIMIT),
            "m.new_content": {"msgtype": "m.text", "body": _marked(LIMIT)},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    edit = await client.sent(
        room,
        {
            "msgtype": "m.text",
            "body": "* " + _marked(LIMIT + 1),
            "m.new_content": {"msgtype": "m.text", "body": _marked(LIMIT + 1)},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    notice = await _explained(owner, room, edit)
    _assert_notice(
        notice, bridge.mapper.bot_mxid, client.user_id, "ORG.PRACTICEBRIDGE.MESSAGE_TOO_LONG"
    )
    assert await _redacted(owner, room, edit)
    assert not await _redacted(owner, room, original)
    assert not await _redacted(owner, room, fine_edit)


async def test_client_message_without_direct_chat_access_is_redacted_and_explained(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id, limit=None, staff=STAFF)
    r = await client.request("GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/{POLICY}/")
    await bridge.rooms.send_state(room, POLICY, r.body | {"clients_may_send": False})
    sent = await client.sent(room, _text("hello?"))
    notice = await _explained(owner, room, sent)
    _assert_notice(
        notice, bridge.mapper.bot_mxid, client.user_id, "ORG.PRACTICEBRIDGE.DIRECT_CHAT_DISABLED"
    )
    assert await _redacted(owner, room, sent)


async def test_client_state_event_and_invite_are_undone_and_explained(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id, limit=None, staff=STAFF)
    other = await api.session_for(practice_id, staff_id="s2")
    # Power levels that slipped: the client may do anything in this chat.
    levels = layout.power_levels([owner.user_id])
    levels["users"][client.user_id] = 100
    await bridge.rooms.send_state(room, "m.room.power_levels", levels)

    r = await client.request(
        "PUT", f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.topic/", {"topic": "mine"}
    )
    assert r.status == 200, r.body
    topic = str(r.body["event_id"])
    r = await client.request(
        "POST", f"/_matrix/client/v3/rooms/{quote(room)}/invite", {"user_id": other.user_id}
    )
    assert r.status == 200, r.body
    member_path = f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.member/"

    notice = await _explained(owner, room, topic)
    _assert_notice(notice, bridge.mapper.bot_mxid, client.user_id, "M_FORBIDDEN")
    assert await _redacted(owner, room, topic)
    r = await owner.request("GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.topic/")
    assert r.body.get("topic") is None

    async def uninvited() -> bool:
        r = await owner.request("GET", member_path + quote(other.user_id))
        return r.body.get("membership") == "leave"

    await eventually(uninvited)
    invites = [
        ev
        for ev in await owner.timeline(room, 200)
        if ev["type"] == "m.room.member"
        and ev["state_key"] == other.user_id
        and ev["content"].get("membership") == "invite"
    ]
    (invite,) = invites
    assert invite["sender"] == client.user_id
    notice = await _explained(owner, room, invite["event_id"])
    _assert_notice(notice, bridge.mapper.bot_mxid, client.user_id, "M_FORBIDDEN")


async def test_client_created_room_is_left(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(practice_id)
    client = await api.session_for(practice_id, client_id="c1")
    r = await client.request("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"})
    assert r.status == 200, r.body
    room = r.body["room_id"]

    async def left() -> bool:
        r = await client.request("GET", "/_matrix/client/v3/joined_rooms")
        return room not in r.body["joined_rooms"]

    await eventually(left)


async def test_forged_policy_is_ignored_and_the_bots_still_applies(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id, staff=STAFF)
    levels = layout.power_levels([owner.user_id])
    levels["users"][owner.user_id] = 100
    await bridge.rooms.send_state(room, "m.room.power_levels", levels)
    r = await owner.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room)}/state/{POLICY}/",
        {
            "client_user_ids": [client.user_id],
            "client_message_limit": 5,
            "clients_may_send": False,
        },
    )
    assert r.status == 200, r.body
    under_the_bots = await client.sent(room, _text(_marked(LIMIT - 5)))
    over_the_bots = await client.sent(room, _text(_marked(LIMIT + 5)))
    notice = await _explained(owner, room, over_the_bots)
    assert notice["content"][RULE_KEY]["max_length"] == LIMIT
    assert not await _redacted(owner, room, under_the_bots)


async def test_each_violation_is_undone_and_explained_exactly_once(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id, staff=STAFF)
    over_text = _marked(LIMIT + 1)
    over = await client.sent(room, _text(over_text))
    await _explained(owner, room, over)
    ts = (await _event(owner, room, over))["origin_server_ts"]

    # Synapse delivers the same event again, in a new transaction.
    original = {
        "event_id": over,
        "room_id": room,
        "sender": client.user_id,
        "type": "m.room.message",
        "origin_server_ts": ts,
        "content": _text(over_text),
    }
    cfg = bridge.config
    async with aiohttp.ClientSession() as session:
        url = f"{cfg.appservice.address}/_matrix/app/v1/transactions/{uuid.uuid4().hex}"
        headers = {"Authorization": f"Bearer {cfg.appservice.hs_token}"}
        async with session.put(url, json={"events": [original]}, headers=headers) as resp:
            assert resp.status == 200
    await bridge.pipeline.wait_idle()
    assert await bridge.rules.run_once() == 0

    # The bridge stopped after acting but before recording it: the work is done again, first
    # with a look at the timeline, then (say the notice scrolled away) blindly; the homeserver
    # answers the repeated transaction ids with the first events.
    for attempts in (1, 0):
        await bridge.db.execute(
            "UPDATE rule_violation SET done_at=NULL, attempts=$2, next_try=0 WHERE event_id=$1",
            over,
            attempts,
        )
        assert await bridge.rules.run_once() == 1
        assert (
            await bridge.db.fetchval("SELECT outcome FROM rule_violation WHERE event_id=$1", over)
            == "ok"
        )
    assert len(await _notices(owner, room, over)) == 1
    assert len(await _redactions(owner, room, over)) == 1
    rows = await bridge.db.fetchval(
        "SELECT COUNT(*) FROM audit_log WHERE action='rule.violated' AND target=$1", room
    )
    assert rows == 1


async def test_a_room_whose_policy_the_bridge_never_saw_is_read_once(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    owner, client, room = await chat_with_limit(api, practice_id, staff=STAFF)
    # As if the room's policy events had been processed before policies were kept.
    await bridge.db.execute("DELETE FROM room_policy WHERE room_id=$1", room)
    over = await client.sent(room, _text(_marked(LIMIT + 1)))
    await _explained(owner, room, over)
    stored = await bridge.db.fetchval("SELECT content FROM room_policy WHERE room_id=$1", room)
    assert stored is not None and f'"client_message_limit": {LIMIT}' in stored
