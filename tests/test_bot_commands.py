"""Bot commands as a practitioner sends them from a standard Matrix app
(docs/chats.md#bot-commands).

Staff send ``!pb ...`` as plain messages with their own minted sessions on the real Synapse; the
effects are read back from Matrix (membership, names, tags, the room gone), the answers from the
staff member's private room with the bot, and the client's view from the client's own session.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
from mautrix.api import Method, PathBuilder
from mautrix.errors import MatrixRequestError
from mautrix.types import UserID

from appservice.commands import ExportFile
from appservice.commands.parse import UNKNOWN, Command, find_people, parse_command, split_choice
from bridge.app import Bridge
from bridge.chats.actors import Actor
from bridge.directory import Client, Staff
from tests.clients import ApiClient, MatrixClient, eventually

_V3 = "/_matrix/client/v3"
_LINK = re.compile(r"https://matrix\.to/#/([^?\s]+)")


# -- helpers -------------------------------------------------------------------------------


async def _messages(mc: MatrixClient, room: str) -> list[dict[str, Any]]:
    """The room's message events as this user sees them, oldest first."""
    return [e for e in await mc.timeline(room, 100) if e["type"] == "m.room.message"]


async def _joined(mc: MatrixClient, room: str) -> set[str]:
    r = await mc.request("GET", f"{_V3}/rooms/{quote(room)}/joined_members")
    assert r.status == 200, r.body
    return set(r.body["joined"])


async def _tags(mc: MatrixClient, room: str) -> set[str]:
    r = await mc.request("GET", f"{_V3}/user/{quote(mc.user_id)}/rooms/{quote(room)}/tags")
    assert r.status == 200, r.body
    return set(r.body["tags"])


class Staffer:
    """A staff member in a Matrix app: their session and their private room with the bot."""

    def __init__(self, mc: MatrixClient, bot: str) -> None:
        self.mc = mc
        self.bot = bot
        self.private: str | None = None

    async def private_room(self) -> str:
        """Found as a Matrix app finds it: the bot's entry in the user's m.direct."""
        if self.private is None:

            async def direct() -> str | None:
                r = await self.mc.request(
                    "GET", f"{_V3}/user/{quote(self.mc.user_id)}/account_data/m.direct"
                )
                rooms = r.body.get(self.bot) if r.status == 200 else None
                return rooms[-1] if rooms else None

            self.private = await eventually(direct)
        return self.private

    async def notices(self) -> list[dict[str, Any]]:
        if self.private is None:
            return []
        return [
            e
            for e in await _messages(self.mc, self.private)
            if e["sender"] == self.bot and e["content"].get("msgtype") == "m.notice"
        ]

    async def command(self, room: str, text: str, expect: str) -> str:
        """Send a command; wait for the next notice; check it says ``expect``; return it."""
        before = len(await self.notices())
        await self.mc.say(room, text)
        await self.private_room()

        async def answered() -> list[dict[str, Any]]:
            notices = await self.notices()
            return notices[before:]

        new = await eventually(answered)
        body = str(new[0]["content"]["body"])
        assert expect in body, body
        return body


async def _practice(api: ApiClient, practice_id: str, **kwargs: Any) -> None:
    kwargs.setdefault("staff", (("p1", "practitioner"), ("t1", "team_member")))
    await api.setup_practice(practice_id, **kwargs)


async def _staffer(api: ApiClient, bridge: Bridge, practice_id: str, staff_id: str) -> Staffer:
    mc = await api.session_for(practice_id, staff_id=staff_id)
    return Staffer(mc, bridge.mapper.bot_mxid)


def _linked_room(reply: str) -> str:
    """The room a bot reply links to (a matrix.to link)."""
    link = _LINK.search(reply)
    assert link is not None, reply
    return unquote(link[1])


async def _p1_chat(api: ApiClient, bridge: Bridge, practice_id: str) -> tuple[Staffer, str]:
    """The practice, and its practitioner p1 in a 1:1 chat with client c1."""
    await _practice(api, practice_id)
    p1 = await _staffer(api, bridge, practice_id, "p1")
    return p1, await api.direct_chat(p1.mc, client_id="c1")


async def _p1_and_client(
    api: ApiClient, bridge: Bridge, practice_id: str
) -> tuple[Staffer, MatrixClient, str]:
    """The same with client c1 signed in first: p1, c1's session and their chat."""
    await _practice(api, practice_id)
    p1 = await _staffer(api, bridge, practice_id, "p1")
    client = await api.session_for(practice_id, client_id="c1")
    return p1, client, await api.direct_chat(p1.mc, client_id="c1")


async def _no_bot_messages(client: MatrixClient, room: str, bot: str) -> None:
    """Nothing the bot says about commands ever lands in the client's room."""
    for ev in await _messages(client, room):
        assert ev["sender"] != bot, ev
        assert ev["content"].get("msgtype") not in ("m.notice", "m.file"), ev


async def _jobs(bridge: Bridge, room: str) -> list[str]:
    rows = await bridge.db.fetch(
        "SELECT command FROM bot_command WHERE room_id=$1 ORDER BY id", room
    )
    return [r["command"] for r in rows]


# -- parsing (no homeserver) ---------------------------------------------------------------


def test_parse_recognises_commands_and_nothing_else() -> None:
    def text(body: str, **extra: Any) -> dict[str, Any]:
        return {"msgtype": "m.text", "body": body, **extra}

    assert parse_command(text("!pb share t1")) == Command("share", "t1")
    assert parse_command(text("  !PB  Chat   Anna   Smith 2 ")) == Command("chat", "Anna Smith 2")
    assert parse_command(text("!pb")) == Command("help")
    assert parse_command(text("!pb frobnicate x")) == Command(UNKNOWN)
    assert parse_command(text("!pbshare t1")) is None
    assert parse_command(text("please !pb share t1")) is None
    assert parse_command({"msgtype": "m.notice", "body": "!pb help"}) is None
    assert parse_command(text("* !pb pin", **{"m.new_content": text("!pb pin")})) is None
    assert parse_command(text("!pb pin " + "x" * 600)) is None
    assert parse_command(text("!pb pin", **{"m.relates_to": {"rel_type": "m.replace"}})) is None
    assert parse_command("!pb help") is None
    assert parse_command(text(None)) is None  # type: ignore[arg-type]


def test_people_are_found_by_id_then_by_unique_name() -> None:
    def client(cid: str, name: str) -> Client:
        return Client("p", cid, UserID(f"@c_{cid}:x"), name, "", True, True)

    def staff(sid: str, name: str) -> Staff:
        return Staff("p", sid, UserID(f"@s_{sid}:x"), name, "", "team_member")

    clients = [client("a1", "Anna Smith"), client("a2", "anna smith"), client("s1", "Sam")]
    team = [staff("s1", "Sasha"), staff("t1", "Tom")]
    assert [p.name for p in find_people("ANNA SMITH", clients=clients)] == [
        "Anna Smith",
        "anna smith",
    ]
    assert find_people("a2", clients=clients) == [clients[1]]
    assert len(find_people("s1", clients=clients, staff=team)) == 2
    (only,) = find_people("staff:s1", clients=clients, staff=team)
    assert isinstance(only, Staff) and only.name == "Sasha"
    (only,) = find_people('client:"Sam"', clients=clients, staff=team)
    assert isinstance(only, Client)
    assert find_people("nobody", clients=clients, staff=team) == []
    assert find_people("client:", clients=clients) == []
    assert split_choice("Anna Smith 2") == ("Anna Smith", "2")
    assert split_choice("Anna NEW") == ("Anna", "new")
    assert split_choice("Anna") == ("Anna", None)


# -- commands on the real homeserver -------------------------------------------------------


async def test_share_in_client_chat_answers_privately_and_hides_the_command(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    p1, client, room = await _p1_and_client(api, bridge, practice_id)

    reply = await p1.command(room, "!pb share t1", "Staff t1 now shares the chat with Client c1")
    assert "!pb" not in reply
    t1 = bridge.mapper.user_id("staff", practice_id, "t1")
    assert t1 in await _joined(client, room)

    # The private room holds only the bot and the practitioner and is a direct room.
    private = await p1.private_room()
    assert await _joined(p1.mc, private) == {p1.mc.user_id, bridge.mapper.bot_mxid}
    (notice,) = await p1.notices()
    assert notice["content"]["msgtype"] == "m.notice"
    assert "href=" in notice["content"]["formatted_body"]

    # The client's room: the share happened, the command is gone, the bot said nothing there.
    await _no_bot_messages(client, room, bridge.mapper.bot_mxid)
    (command,) = [e for e in await _messages(client, room) if e["sender"] == p1.mc.user_id]
    assert command["content"] == {}
    assert "redacted_because" in command["unsigned"]


async def test_commands_from_clients_and_outside_rooms_are_ignored(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    p1, client, room = await _p1_and_client(api, bridge, practice_id)
    await client.say(room, "!pb share t1")
    await client.say(room, "!pb delete")
    # A room of the practitioner's own that the bridge does not own.
    r = await p1.mc.request("POST", f"{_V3}/createRoom", {"preset": "private_chat"})
    own = r.body["room_id"]
    await p1.mc.say(own, "!pb contacts")

    # A staff command afterwards, in the same room: when it is answered, the client's commands
    # before it have been through the pipeline.
    await p1.command(room, "!pb pin", "Pinned the chat with Client c1")
    await bridge.pipeline.wait_idle()
    await bridge.commands.wait_idle()
    assert await _jobs(bridge, room) == ["pin"]
    assert await _jobs(bridge, own) == []
    bodies = [
        e["content"].get("body")
        for e in await _messages(client, room)
        if e["sender"] == client.user_id
    ]
    assert bodies == ["!pb share t1", "!pb delete"]  # not redacted, not acted on
    t1 = bridge.mapper.user_id("staff", practice_id, "t1")
    assert await _joined(client, room) == {p1.mc.user_id, client.user_id, bridge.mapper.bot_mxid}
    assert t1 not in await _joined(client, room)
    assert len(await p1.notices()) == 1
    await _no_bot_messages(client, room, bridge.mapper.bot_mxid)


async def test_pin_unpin_hide_unhide_set_tags_in_matrix(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    p1, client, room = await _p1_and_client(api, bridge, practice_id)

    await p1.command(room, "!pb pin", "Pinned")
    assert "m.favourite" in await _tags(p1.mc, room)
    await p1.command(room, "!pb hide", "Hid the chat with Client c1 until a new message")
    assert {"m.favourite", "org.practicebridge.hidden"} <= await _tags(p1.mc, room)
    r = await api.call("GET", "/chats", token=p1.mc.token)
    assert r.body["chats"] == []
    await p1.command(room, "!pb unpin", "Unpinned")
    await p1.command(room, "!pb unhide", "Unhid")
    assert await _tags(p1.mc, room) == set()
    assert await _tags(client, room) == set()  # per user: the client's tags are untouched
    await _no_bot_messages(client, room, bridge.mapper.bot_mxid)
    # A command is not a message of the chat: the client's list does not call it unread.
    r = await api.call("GET", "/chats", token=client.token)
    (item,) = r.body["chats"]
    assert item["unread"] is False


async def test_add_turns_a_direct_chat_into_a_group_then_adds_to_it(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    await _practice(api, practice_id, clients=("c1", "c2"))
    p1 = await _staffer(api, bridge, practice_id, "p1")
    c1 = await api.session_for(practice_id, client_id="c1")
    c2 = await api.session_for(practice_id, client_id="c2")
    room = await api.direct_chat(p1.mc, client_id="c1")
    await c1.say(room, "before the group")

    await p1.command(room, "!pb add client c2", "Added Client c2 to the group")
    assert (await c2.state(room, "m.room.name"))["name"] == "Staff p1, Client c1, Client c2"
    assert (await c2.state(room, "org.practicebridge.chat"))["kind"] == "group"
    assert c2.user_id in await _joined(c1, room)
    assert "before the group" in [e["content"].get("body") for e in await _messages(c2, room)]

    await p1.command(room, "!pb add t1", "Added Staff t1 to the group")
    t1 = bridge.mapper.user_id("staff", practice_id, "t1")
    assert t1 in await _joined(c1, room)
    assert (await c2.state(room, "m.room.name"))["name"] == "Staff p1, Client c1, Client c2"
    levels = await c1.state(room, "m.room.power_levels")
    assert levels["users"][t1] == 50

    await p1.command(room, "!pb add c2", "Client c2 is already in this chat")
    await p1.command(room, "!pb add nobody", "No client or team member has the id or name")
    await p1.command(room, "!pb add", "Name who to add")
    for mc in (c1, c2):
        await _no_bot_messages(mc, room, bridge.mapper.bot_mxid)


async def test_delete_asks_for_confirmation_in_the_private_room(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    await _practice(api, practice_id)
    p1 = await _staffer(api, bridge, practice_id, "p1")
    t1 = await _staffer(api, bridge, practice_id, "t1")
    client = await api.session_for(practice_id, client_id="c1")
    room = await api.direct_chat(p1.mc, client_id="c1")
    r = await api.call(
        "POST", f"/chats/{quote(room)}/share", {"staff_id": "t1"}, token=p1.mc.token
    )
    assert r.status == 200, r.body

    # A team member the chat is shared with may not delete it: refused before any code.
    await t1.command(room, "!pb delete", "Only the practice owner or the chat's practitioner")

    ask = await p1.command(room, "!pb delete", "To confirm, send here within 5 minutes")
    code = re.search(r"!pb confirm delete (\w+)", ask)
    assert code is not None
    assert await _joined(client, room)  # nothing happened yet
    private = await p1.private_room()
    await p1.command(private, "!pb confirm delete zzzzzz", "unknown or has expired")
    await p1.command(private, "!pb confirm", "!pb confirm delete <code>")

    # An expired code does nothing (and is used up).
    await bridge.db.execute(
        "UPDATE bot_confirmation SET expires_at=0 WHERE user_id=$1", p1.mc.user_id
    )
    await p1.command(private, f"!pb confirm delete {code[1]}", "unknown or has expired")
    assert client.user_id in await _joined(client, room)

    ask = await p1.command(room, "!pb delete", "To confirm")
    code = re.search(r"!pb confirm delete (\w+)", ask)
    assert code is not None
    await p1.command(private, f"!pb confirm delete {code[1].upper()}", "Deleted the chat with")
    try:
        await bridge.az.intent.api.request(
            Method.GET, PathBuilder(f"/_synapse/admin/v1/rooms/{quote(room)}")
        )
        raise AssertionError("the room still exists")
    except MatrixRequestError as e:
        assert e.http_status == 404
    r = await api.call("GET", "/chats", token=p1.mc.token, params={"include_hidden": "true"})
    assert r.body["chats"] == []


async def test_chat_from_a_direct_room_with_the_bot_opens_the_clients_chat(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    await _practice(api, practice_id, clients=("c1", "c2"))
    p1 = await api.session_for(practice_id, staff_id="p1")
    bot = bridge.mapper.bot_mxid
    # What a Matrix app does for "start chat with the bot".
    r = await p1.request(
        "POST",
        f"{_V3}/createRoom",
        {"preset": "trusted_private_chat", "is_direct": True, "invite": [bot]},
    )
    assert r.status == 200, r.body
    private = r.body["room_id"]

    async def welcomed() -> bool:
        return any(
            e["sender"] == bot and "Practice bot commands" in e["content"].get("body", "")
            for e in await _messages(p1, private)
        )

    await eventually(welcomed)
    staffer = Staffer(p1, bot)
    staffer.private = private
    reply = await staffer.command(private, "!pb chat client C1", "New chat with Client c1")
    room = _linked_room(reply)
    c1 = bridge.mapper.user_id("client", practice_id, "c1")
    assert await _joined(p1, room) == {p1.user_id, c1, bot}
    reply = await staffer.command(private, "!pb chat c1", "Your chat with Client c1")
    assert _linked_room(reply) == room
    await staffer.command(private, "!pb chat Nobody", "No client has the id or name")
    await staffer.command(private, "!pb pin", "Send !pb pin inside the chat")

    contacts = await staffer.command(private, "!pb contacts", "Team (1):")
    assert "Staff t1 (staff:t1, team member)" in contacts
    assert "Client c1 (client:c1) – 1 chat" in contacts
    assert "Client c2 (client:c2)" in contacts and "Groups (0):" in contacts
    await staffer.command(private, "!pb what", "That is not a command I know")


async def test_chat_lists_candidates_and_opens_the_chosen_one(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    await _practice(
        api,
        practice_id,
        staff=(("p1", "practitioner"), ("p2", "practitioner"), ("t1", "team_member")),
    )
    p1 = await api.session_for(practice_id, staff_id="p1")
    p2 = await api.session_for(practice_id, staff_id="p2")
    t1 = await _staffer(api, bridge, practice_id, "t1")
    chats = []
    for owner in (p1, p2):
        chat = await api.direct_chat(owner, client_id="c1")
        r = await api.call(
            "POST", f"/chats/{quote(chat)}/share", {"staff_id": "t1"}, token=owner.token
        )
        assert r.status == 200, r.body
        chats.append(chat)

    await t1.command(chats[0], "!pb help", "Practice bot commands")
    private = await t1.private_room()
    offer = await t1.command(private, "!pb chat Client c1", "more than one 1:1 chat")
    assert "1. Staff p1's chat, shared with you" in offer
    assert "2. Staff p2's chat, shared with you" in offer
    reply = await t1.command(private, "!pb chat Client c1 2", "Your chat with Client c1")
    assert _linked_room(reply) == chats[1]
    reply = await t1.command(private, "!pb chat c1 new", "New chat with Client c1")
    assert _linked_room(reply) not in chats


async def test_redelivered_command_runs_once(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    p1, room = await _p1_chat(api, bridge, practice_id)
    await p1.command(room, "!pb delete", "To confirm")
    (event,) = [e for e in await _messages(p1.mc, room) if e["sender"] == p1.mc.user_id]
    r = await p1.mc.request("GET", f"{_V3}/rooms/{quote(room)}/event/{quote(event['event_id'])}")
    original = dict(r.body)
    original.pop("redacted_because", None)
    original["content"] = {"msgtype": "m.text", "body": "!pb delete"}

    cfg = bridge.config
    url = f"http://127.0.0.1:{cfg.appservice.port}/_matrix/app/v1/transactions/"
    headers = {"Authorization": f"Bearer {cfg.appservice.hs_token}"}

    async def deliver() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.put(
                url + uuid.uuid4().hex, json={"events": [original]}, headers=headers
            ) as resp:
                assert resp.status == 200, await resp.text()
        await bridge.pipeline.wait_idle()
        await bridge.commands.wait_idle()

    await deliver()  # dropped by the intake queue: the event id is known
    await bridge.queue.prune(retention_ms=-3600_000)  # the queue forgets it...
    await deliver()  # ...and the command table still knows it
    count = await bridge.db.fetchval(
        "SELECT count(*) FROM bot_command WHERE event_id=$1", event["event_id"]
    )
    codes = await bridge.db.fetchval(
        "SELECT count(*) FROM bot_confirmation WHERE user_id=$1", p1.mc.user_id
    )
    assert (count, codes) == (1, 1)
    assert len(await p1.notices()) == 1


async def test_command_recorded_before_a_crash_runs_after_restart(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    p1, room = await _p1_chat(api, bridge, practice_id)
    await bridge.commands.stop()
    event_id = await p1.mc.say(room, "!pb pin")

    async def recorded() -> Any:
        return await bridge.db.fetchrow(
            "SELECT done_at, args FROM bot_command WHERE event_id=$1", event_id
        )

    row = await eventually(recorded)
    assert row["done_at"] is None
    assert "m.favourite" not in await _tags(p1.mc, room)

    bridge.commands.start()

    async def pinned() -> bool:
        return "m.favourite" in await _tags(p1.mc, room)

    await eventually(pinned)
    await bridge.commands.wait_idle()
    row = await bridge.db.fetchrow(
        "SELECT done_at, outcome, args FROM bot_command WHERE event_id=$1", event_id
    )
    assert row is not None
    assert row["done_at"] is not None and row["outcome"] == "ok" and row["args"] is None


class _CsvExporter:
    """Stands in for the export service where none is wired: a file for a chat in view."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    async def export_chat(self, actor: Actor, chat_id: str, fmt: str) -> ExportFile:
        chat = await self.bridge.chats.visible_chat(actor, chat_id)
        data = f"chat,kind\n{chat.room_id},{chat.kind}\n".encode()
        return ExportFile(f"chat.{fmt}", "text/csv", data)


async def test_export_goes_to_the_private_room_only(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    p1, client, room = await _p1_and_client(api, bridge, practice_id)
    await client.say(room, "a message to export")
    wired = bridge.commands.exporter
    bridge.commands.exporter = None
    await p1.command(room, "!pb export", "Export is not available yet")
    await p1.command(room, "!pb export pdf", "Export as xlsx or csv")

    # The export service the bridge wires in, or a stand-in where there is none yet.
    bridge.commands.exporter = wired or _CsvExporter(bridge)
    await p1.command(room, "!pb export csv", "The history of the chat with Client c1")
    private = await p1.private_room()

    async def delivered() -> list[dict[str, Any]]:
        return [
            e for e in await _messages(p1.mc, private) if e["content"].get("msgtype") == "m.file"
        ]

    (file,) = await eventually(delivered)
    content = file["content"]
    assert content["body"].endswith(".csv") and content["url"].startswith("mxc://")
    server, media_id = content["url"][len("mxc://") :].split("/")
    r = await p1.mc.session.get(
        f"{p1.mc.base}/_matrix/client/v1/media/download/{server}/{media_id}",
        headers={"Authorization": f"Bearer {p1.mc.token}"},
    )
    async with r:
        assert r.status == 200
        data = await r.read()
    assert data and content["info"]["size"] == len(data)
    await _no_bot_messages(client, room, bridge.mapper.bot_mxid)


async def test_leaving_the_private_room_gets_a_new_one(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    p1, room = await _p1_chat(api, bridge, practice_id)
    await p1.command(room, "!pb help", "Practice bot commands")
    first = await p1.private_room()
    r = await p1.mc.request("POST", f"{_V3}/rooms/{quote(first)}/leave", {})
    assert r.status == 200, r.body

    async def forgotten() -> bool:
        return await bridge.commands.store.private_room(p1.mc.user_id) is None

    await eventually(forgotten)
    await p1.mc.say(room, "!pb pin")

    async def replaced() -> str | None:
        return await bridge.commands.store.private_room(p1.mc.user_id)

    second = await eventually(replaced)
    assert second != first
    p1.private = second
    await eventually(p1.notices)
    assert "Pinned" in (await p1.notices())[0]["content"]["body"]


def test_help_names_every_command() -> None:
    from appservice.commands.parse import COMMANDS
    from appservice.commands.runner import HELP

    for name in COMMANDS - {"confirm"}:
        assert f"!pb {name}" in HELP, name


async def test_the_bot_keeps_private_rooms_private(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    await _practice(api, practice_id)
    p1 = await api.session_for(practice_id, staff_id="p1")
    bot = bridge.mapper.bot_mxid
    store = bridge.commands.store

    # An encrypted direct room (what Matrix apps open by default): the bot cannot read it,
    # says so there, leaves, and answers in a private room of its own.
    r = await p1.request(
        "POST",
        f"{_V3}/createRoom",
        {
            "preset": "trusted_private_chat",
            "is_direct": True,
            "invite": [bot],
            "initial_state": [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        },
    )
    encrypted = r.body["room_id"]

    async def bot_left() -> bool:
        return bot not in await _joined(p1, encrypted)

    async def told() -> list[dict[str, Any]]:
        return [e for e in await _messages(p1, encrypted) if e["sender"] == bot]

    (why,) = await eventually(told)
    assert "encrypted" in why["content"]["body"]
    await eventually(bot_left)
    staffer = Staffer(p1, bot)
    private = await staffer.private_room()
    assert private != encrypted
    (welcome,) = await eventually(staffer.notices)
    assert "Practice bot commands" in welcome["content"]["body"]

    # A plain direct room is adopted; letting someone else in ends that.
    r = await p1.request(
        "POST",
        f"{_V3}/createRoom",
        {"preset": "trusted_private_chat", "is_direct": True, "invite": [bot]},
    )
    adopted = r.body["room_id"]

    async def is_adopted() -> bool:
        return await store.private_room(p1.user_id) == adopted

    await eventually(is_adopted)
    t1 = bridge.mapper.user_id("staff", practice_id, "t1")
    r = await p1.request("POST", f"{_V3}/rooms/{quote(adopted)}/invite", {"user_id": t1})
    assert r.status == 200, r.body

    async def dropped() -> bool:
        return await store.private_room(p1.user_id) is None

    await eventually(dropped)

    async def bot_gone() -> bool:
        return bot not in await _joined(p1, adopted)

    await eventually(bot_gone)
