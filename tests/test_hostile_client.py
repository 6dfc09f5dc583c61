"""A hostile portal user: a real session doing raw Client-Server calls against the real Synapse.

A portal session is a full Matrix login, so a client (or a team member) can try anything the
API allows. Each case below is one such attempt: it asserts the refusal a portal can show
(status, errcode, a sentence) and, reading the chat as another member, that nothing of the
attempt was stored. The allow-list's positive side (what a chat takes) is held here too, so a
refusal never comes from a rule that is too wide.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from practice_bridge_synapse.content import FILE_NAME_MAX
from tests.clients import LIMIT, ApiClient, MatrixClient, Reply, chat_with_limit, eventually
from tests.media import sample_png, upload

pytestmark = pytest.mark.synapse_workers

TOO_LONG = "ORG.PRACTICEBRIDGE.MESSAGE_TOO_LONG"
NOT_ALLOWED = "ORG.PRACTICEBRIDGE.EVENT_NOT_ALLOWED"
CANNOT_LEAVE = "ORG.PRACTICEBRIDGE.CANNOT_LEAVE_CHAT"
PROFILE_LOCKED = "ORG.PRACTICEBRIDGE.PROFILE_FROM_DIRECTORY"
# The owner's name in the directory (ApiClient.setup_practice names staff "Staff <id>").
OWNER_NAME = "Staff own"
CLIENT_NAME = "Client c1"
_NOT_ALLOWED: dict[str, Any] = {"status": 403, "errcode": NOT_ALLOWED, "length": 12}


def _mark(length: int = 12) -> str:
    """A text of ``length`` code points that no other attempt sends."""
    return (uuid.uuid4().hex + "x" * length)[:length]


def _room(room: str, rest: str) -> str:
    return f"/_matrix/client/v3/rooms/{quote(room)}/{rest}"


def _refused(r: Reply, status: int, errcode: str) -> None:
    assert (r.status, r.errcode) == (status, errcode), r.body
    assert isinstance(r.body.get("error"), str) and r.body["error"].strip(), r.body


async def _stored(reader: MatrixClient, room: str, mark: str) -> bool:
    """Whether ``mark`` appears anywhere in the chat's latest events or its state."""
    events = await reader.timeline(room, limit=100)
    state = await reader.request("GET", _room(room, "state"))
    assert state.status == 200, state.body
    return mark in json.dumps(events) or mark in json.dumps(state.body)


async def _refused_and_not_stored(
    r: Reply, status: int, errcode: str, reader: MatrixClient, room: str, mark: str
) -> None:
    _refused(r, status, errcode)
    assert not await _stored(reader, room, mark)


async def _attempt(
    sender: MatrixClient,
    reader: MatrixClient,
    room: str,
    content: Callable[[str], dict[str, Any]],
    *,
    status: int = 400,
    errcode: str = TOO_LONG,
    length: int = LIMIT + 1,
    event_type: str = "m.room.message",
) -> Reply:
    """``sender`` sends ``content(mark)``, with a fresh mark of ``length`` characters: the
    refusal is ``status`` and ``errcode``, and ``reader`` finds the mark nowhere in the room."""
    mark = _mark(length)
    r = await sender.send(room, content(mark), event_type)
    await _refused_and_not_stored(r, status, errcode, reader, room, mark)
    return r


async def _png(sender: MatrixClient, filename: str) -> str:
    """A small PNG uploaded by ``sender``: its mxc URI."""
    r = await upload(sender, sample_png(), "image/png", filename)
    assert r.status == 200, r.body
    return str(r.body["content_uri"])


async def _profile(reader: MatrixClient, user_id: str) -> Any:
    r = await reader.request("GET", f"/_matrix/client/v3/profile/{quote(user_id)}")
    assert r.status == 200, r.body
    return r.body.get("displayname"), r.body.get("avatar_url")


def _text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


def _html(body: str, html: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, "format": "org.matrix.custom.html"} | {
        "formatted_body": html
    }


def _reply_to(event_id: str) -> dict[str, Any]:
    return {"m.relates_to": {"m.in_reply_to": {"event_id": event_id}}}


def _edit(original: str, new_content: dict[str, Any]) -> dict[str, Any]:
    return {
        "msgtype": new_content.get("msgtype", "m.text"),
        "body": "* " + str(new_content.get("body", "")),
        "m.new_content": new_content,
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }


@pytest.fixture
async def chat(api: ApiClient, practice_id: str) -> tuple[MatrixClient, MatrixClient, str]:
    """The owner's 1:1 chat with client c1, client messages limited to LIMIT characters."""
    return await chat_with_limit(api, practice_id)


@pytest.fixture(params=["client", "staff"])
def either(
    request: pytest.FixtureRequest, chat: tuple[MatrixClient, MatrixClient, str]
) -> tuple[MatrixClient, MatrixClient, str]:
    """(me, other, room): the client trying something, then the owner, with the other member
    reading the chat."""
    owner, client, room = chat
    return (client, owner, room) if request.param == "client" else (owner, client, room)


# -- names and pictures ----------------------------------------------------------------------


async def test_nobody_renames_themselves_as_staff(
    either: tuple[MatrixClient, MatrixClient, str],
) -> None:
    me, other, room = either
    before = await _profile(other, me.user_id)
    assert before[0] in (CLIENT_NAME, OWNER_NAME)
    r = await me.request(
        "PUT",
        f"/_matrix/client/v3/profile/{quote(me.user_id)}/displayname",
        {"displayname": "Dana Whitfield (your practitioner)"},
    )
    _refused(r, 403, PROFILE_LOCKED)
    for method, field, body in (
        ("DELETE", "displayname", None),
        ("PUT", "m.tz", {"m.tz": "Europe/Berlin"}),
        ("PUT", "org.example.title", {"org.example.title": "Practitioner"}),
    ):
        r = await me.request(
            method, f"/_matrix/client/v3/profile/{quote(me.user_id)}/{field}", body
        )
        _refused(r, 403, PROFILE_LOCKED)
    assert await _profile(other, me.user_id) == before
    assert (await other.state(room, "m.room.member", me.user_id)).get("displayname") == before[0]
    assert not await _stored(other, room, "Dana Whitfield")


async def test_nobody_sets_a_picture(either: tuple[MatrixClient, MatrixClient, str]) -> None:
    me, other, room = either
    mxc = await _png(me, "me.png")
    r = await me.request(
        "PUT",
        f"/_matrix/client/v3/profile/{quote(me.user_id)}/avatar_url",
        {"avatar_url": mxc},
    )
    _refused(r, 403, PROFILE_LOCKED)
    assert (await _profile(other, me.user_id))[1] is None
    assert not await _stored(other, room, mxc)


async def test_no_name_or_picture_of_ones_own_in_a_chat(
    either: tuple[MatrixClient, MatrixClient, str],
) -> None:
    me, other, room = either
    path = _room(room, f"state/m.room.member/{quote(me.user_id)}")
    fake = f"Dana Whitfield {_mark()}"
    r = await me.request("PUT", path, {"membership": "join", "displayname": fake})
    await _refused_and_not_stored(r, 403, PROFILE_LOCKED, other, room, fake)
    r = await me.request(
        "PUT", path, {"membership": "join", "avatar_url": "mxc://practice.test/" + _mark()}
    )
    _refused(r, 403, PROFILE_LOCKED)
    # Joining again with a name of one's own is the same attempt.
    r = await me.request("POST", _room(room, "join"), {"displayname": fake})
    await _refused_and_not_stored(r, 403, PROFILE_LOCKED, other, room, fake)
    member = await other.state(room, "m.room.member", me.user_id)
    assert member["membership"] == "join"
    assert member.get("displayname") in (CLIENT_NAME, OWNER_NAME)
    assert member.get("avatar_url") is None


async def test_the_practice_still_renames_people(
    api: ApiClient, practice_id: str, chat: tuple[MatrixClient, MatrixClient, str]
) -> None:
    """Through the bridge (the appservice), names change everywhere: the gate and the member
    rules stop only a user's own session."""
    owner, client, room = chat
    r = await api.call(
        "PUT",
        f"/practices/{practice_id}/clients/c1",
        {
            "name": "Client Renamed",
            "email": "c1@example.com",
            "activated": True,
            "portal_access": True,
            "family_primary_id": None,
        },
    )
    assert r.status in (200, 201), r.body

    async def renamed() -> bool:
        member = await owner.state(room, "m.room.member", client.user_id)
        return member.get("displayname") == "Client Renamed"

    await eventually(renamed)
    assert (await _profile(owner, client.user_id))[0] == "Client Renamed"


# -- what a chat takes -----------------------------------------------------------------------


async def test_everything_on_the_allow_list_passes(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    first = await client.say(room, "Hello")
    mxc = await _png(client, "scan.png")
    media = {"url": mxc, "info": {"mimetype": "image/png", "size": 95}}
    for content in (
        _html("Hello **you**", "Hello <b>you</b>"),
        media | {"msgtype": "m.image", "body": "scan.png"},
        media | {"msgtype": "m.image", "body": "A short caption", "filename": "scan.png"},
        media | {"msgtype": "m.file", "body": "scan.png", "filename": "scan.png"},
        media | {"msgtype": "m.video", "body": "scan.png"},
        media
        | {
            "msgtype": "m.audio",
            "body": "Voice message",
            "org.matrix.msc1767.audio": {"duration": 1500, "waveform": [0, 512, 1024]},
            "org.matrix.msc3245.voice": {},
        },
        _text("Thanks, will do!") | _reply_to(first),
        _edit(first, _text("Hello again")),
    ):
        r = await client.send(room, content)
        assert r.status == 200, (content, r.body)
    r = await client.send(
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}},
        "m.reaction",
    )
    assert r.status == 200, r.body
    r = await client.request(
        "PUT", _room(room, f"redact/{quote(first)}/{uuid.uuid4().hex}"), {"reason": "oops"}
    )
    assert r.status == 200, r.body
    r = await client.request("POST", _room(room, f"receipt/m.read/{quote(first)}"), {})
    assert r.status == 200, r.body
    r = await client.request(
        "PUT", _room(room, f"typing/{quote(client.user_id)}"), {"typing": True, "timeout": 1000}
    )
    assert r.status == 200, r.body


UNKNOWN_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("com.example.note", {"body": "x" * 700}),
    ("com.example.note", {"body": "short"}),
    ("m.poll.start", {"m.poll": {"question": {"m.text": [{"body": "x" * 700}]}}}),
    (
        "org.matrix.msc3381.poll.start",
        {
            "org.matrix.msc3381.poll.start": {
                "question": {"org.matrix.msc1767.text": "Which day?"},
                "kind": "org.matrix.msc3381.poll.disclosed",
                "answers": [{"id": "a", "org.matrix.msc1767.text": "x" * 700}],
            },
            "org.matrix.msc1767.text": "Which day?",
        },
    ),
    ("m.sticker", {"body": "x" * 700, "url": "mxc://practice.test/sticker", "info": {}}),
    ("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x" * 700}),
    ("m.call.invite", {"call_id": "c", "version": 1, "lifetime": 60000}),
    ("m.room.message", {"msgtype": "m.emote", "body": "waves"}),
    ("m.room.message", {"msgtype": "m.location", "body": "here", "geo_uri": "geo:0,0"}),
    ("m.room.message", {"msgtype": "m.notice", "body": "I am the practice bot"}),
    ("m.room.message", {"msgtype": "m.key.verification.request", "body": "verify"}),
    ("m.room.message", {"msgtype": "com.example.long", "body": "x" * 700}),
]


@pytest.mark.parametrize(("event_type", "content"), UNKNOWN_TYPES)
async def test_client_sends_nothing_off_the_allow_list(
    chat: tuple[MatrixClient, MatrixClient, str], event_type: str, content: dict[str, Any]
) -> None:
    owner, client, room = chat
    r = await _attempt(
        client,
        owner,
        room,
        lambda mark: content | {"org.example.mark": mark},
        **_NOT_ALLOWED,
        event_type=event_type,
    )
    assert r.body["event_type"] == event_type


@pytest.mark.parametrize(
    ("event_type", "content"),
    [(t, c) for t, c in UNKNOWN_TYPES if c.get("msgtype") != "m.notice"],
)
async def test_staff_send_nothing_off_the_allow_list_either(
    chat: tuple[MatrixClient, MatrixClient, str], event_type: str, content: dict[str, Any]
) -> None:
    owner, client, room = chat
    await _attempt(
        owner,
        client,
        room,
        lambda mark: content | {"org.example.mark": mark},
        **_NOT_ALLOWED,
        event_type=event_type,
    )


async def test_staff_send_notices_and_clients_do_not(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    r = await owner.send(room, {"msgtype": "m.notice", "body": "The practice is closed today."})
    assert r.status == 200, r.body
    r = await _attempt(
        client, owner, room, lambda mark: {"msgtype": "m.notice", "body": mark}, **_NOT_ALLOWED
    )
    assert r.body["msgtype"] == "m.notice"


async def test_an_edit_cannot_turn_a_message_into_something_else(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    original = await client.say(room, "Hello")

    def edit(new_content: dict[str, Any]) -> dict[str, Any]:
        return _edit(original, new_content) | {"msgtype": "m.text"}

    location = {"msgtype": "m.location", "geo_uri": "geo:0,0"}
    await _attempt(client, owner, room, lambda m: edit(location | {"body": m}), **_NOT_ALLOWED)
    # A new content whose msgtype is no string at all is refused the same way, not a 500.
    not_a_string = {"msgtype": ["m.text"]}
    await _attempt(client, owner, room, lambda m: edit(not_a_string | {"body": m}), **_NOT_ALLOWED)


# -- the length limit counts what the client wrote -------------------------------------------


async def test_a_short_body_does_not_carry_a_long_formatted_body(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    r = await _attempt(client, owner, room, lambda mark: _html("hi", f"<b>{mark}</b>"))
    assert r.body["max_length"] == LIMIT
    # Markup no parser reads is counted whole, never a server error.
    await _attempt(client, owner, room, lambda mark: _html("hi", f"<![{mark}"))
    # Markup is not text: a formatted body of exactly LIMIT visible characters passes, and
    # entities count as the one character they show.
    at_limit = _mark(LIMIT - 1)
    r = await client.send(
        room,
        _html(
            at_limit + "&", f'<p><a href="https://example.org/{"y" * 200}">{at_limit}</a>&amp;</p>'
        ),
    )
    assert r.status == 200, r.body


async def test_a_caption_counts_plain_or_formatted(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    media = {"msgtype": "m.image", "url": await _png(client, "scan.png"), "filename": "scan.png"}
    await _attempt(client, owner, room, lambda mark: media | {"body": mark}, length=LIMIT * 30)
    html = {"body": "ok", "format": "org.matrix.custom.html"}
    await _attempt(
        client, owner, room, lambda mark: media | html | {"formatted_body": f"<i>{mark}</i>"}
    )


async def test_a_file_name_is_free_up_to_what_file_systems_keep_then_counts_whole(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    media = {"msgtype": "m.file", "url": await _png(client, "results.png")}
    # A real file's name, longer than the limit, is a name and passes.
    r = await client.send(room, media | {"body": "lab-results-" + "x" * 80 + ".png"})
    assert r.status == 200, r.body
    # A "name" longer than any file system keeps is text: in the body or in filename.
    too_long = FILE_NAME_MAX + 1
    await _attempt(client, owner, room, lambda mark: media | {"body": mark}, length=too_long)
    as_filename = {"body": "ok"}
    await _attempt(
        client, owner, room, lambda mark: media | as_filename | {"filename": mark}, length=too_long
    )


async def test_an_edit_counts_its_new_content_plain_or_formatted(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    original = await client.say(room, "Hello")
    await _attempt(client, owner, room, lambda m: _edit(original, _html("ok", f"<b>{m}</b>")))
    # The edit's own fallback (outside m.new_content) counts too.
    html = {"format": "org.matrix.custom.html"}
    await _attempt(
        client,
        owner,
        room,
        lambda m: _edit(original, _text("ok")) | html | {"formatted_body": f"* <b>{m}</b>"},
    )


async def test_a_reply_counts_what_was_typed_not_what_it_quotes(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    long_original = "Please remember to drink enough water every day. " * 10
    original = await owner.say(room, long_original)
    typed = "Thanks, will do!"
    quoted = "\n".join(f"> {line}" for line in [f"<{owner.user_id}> {long_original}", "more"])
    html = (
        f'<mx-reply><blockquote><a href="https://matrix.to/#/{room}/{original}">In reply to</a>'
        f' <a href="https://matrix.to/#/{owner.user_id}">{owner.user_id}</a>'
        f"<br>{long_original}</blockquote></mx-reply>{typed}"
    )
    r = await client.send(room, _text(f"{quoted}\n\n{typed}") | _reply_to(original))
    assert r.status == 200, r.body
    r = await client.send(room, _html(f"{quoted}\n\n{typed}", html) | _reply_to(original))
    assert r.status == 200, r.body
    attempts: list[Callable[[str], dict[str, Any]]] = [
        # What follows the fallback is the client's own text, and counts.
        lambda mark: _text(f"{quoted}\n\n{mark}") | _reply_to(original),
        lambda mark: _html(typed, html.replace(typed, mark)) | _reply_to(original),
        # A quote is a fallback only in a reply: elsewhere it is shown, and counts.
        lambda mark: _text(f"> {mark}\n\n{typed}"),
        lambda mark: _html(typed, f"<mx-reply>{mark}</mx-reply>{typed}"),
    ]
    for content in attempts:
        await _attempt(client, owner, room, content)


async def test_reaction_keys_and_redaction_reasons_are_text_too(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    mine = await client.say(room, "Hello")
    await _attempt(
        client,
        owner,
        room,
        lambda mark: {"m.relates_to": {"rel_type": "m.annotation", "event_id": mine, "key": mark}},
        event_type="m.reaction",
    )
    mark = _mark(LIMIT + 1)
    r = await client.request(
        "PUT", _room(room, f"redact/{quote(mine)}/{uuid.uuid4().hex}"), {"reason": mark}
    )
    await _refused_and_not_stored(r, 400, TOO_LONG, owner, room, mark)


async def test_staff_have_no_limit_anywhere(
    chat: tuple[MatrixClient, MatrixClient, str],
) -> None:
    owner, client, room = chat
    long_text = _mark(LIMIT * 50)
    original = await owner.sent(room, _html("hi", f"<b>{long_text}</b>"))
    await owner.sent(room, _edit(original, _text(long_text + "!")))
    assert await _stored(client, room, long_text)


# -- membership is the practice's ------------------------------------------------------------


async def test_nobody_leaves_a_chat_on_their_own(
    either: tuple[MatrixClient, MatrixClient, str],
) -> None:
    me, other, room = either
    r = await me.request("POST", _room(room, "leave"), {"reason": "bye"})
    _refused(r, 403, CANNOT_LEAVE)
    r = await me.request(
        "PUT", _room(room, f"state/m.room.member/{quote(me.user_id)}"), {"membership": "leave"}
    )
    _refused(r, 403, CANNOT_LEAVE)
    assert (await other.state(room, "m.room.member", me.user_id))["membership"] == "join"
    # Still in it: the chat works both ways.
    r = await me.send(room, _text("still here"))
    assert r.status == 200, r.body


async def test_nobody_sends_a_member_event_for_someone_else(
    either: tuple[MatrixClient, MatrixClient, str],
) -> None:
    me, other, room = either
    target = other.user_id
    for method, path, body in (
        ("POST", _room(room, "kick"), {"user_id": target, "reason": "go"}),
        ("POST", _room(room, "ban"), {"user_id": target, "reason": "go"}),
        ("PUT", _room(room, f"state/m.room.member/{quote(target)}"), {"membership": "leave"}),
    ):
        r = await me.request(method, path, body)
        _refused(r, 403, "M_FORBIDDEN")
    assert (await me.state(room, "m.room.member", target))["membership"] == "join"


async def test_a_client_removed_by_the_practice_cannot_rejoin(
    api: ApiClient, practice_id: str, chat: tuple[MatrixClient, MatrixClient, str]
) -> None:
    owner, client, room = chat
    # The practice turns the client's direct chat off: the bridge takes them out of the chat.
    path = f"/practices/{practice_id}/clients/c1/direct-chat"
    r = await api.call("PUT", path, {"enabled": False}, token=owner.token)
    assert r.status == 200, r.body

    async def left() -> bool:
        return (await owner.state(room, "m.room.member", client.user_id))["membership"] == "leave"

    await eventually(left)
    r = await client.request("POST", _room(room, "join"), {})
    _refused(r, 403, "M_FORBIDDEN")
    assert r.body["error"] == "Only the practice adds people to chats."
    r = await client.request(
        "PUT",
        _room(room, f"state/m.room.member/{quote(client.user_id)}"),
        {"membership": "join"},
    )
    _refused(r, 403, "M_FORBIDDEN")
    assert (await owner.state(room, "m.room.member", client.user_id))["membership"] == "leave"
    # The practice brings them back: the bridge's own membership changes still work.
    r = await api.call("PUT", path, {"enabled": True}, token=owner.token)
    assert r.status == 200, r.body

    async def back() -> bool:
        return (await owner.state(room, "m.room.member", client.user_id))["membership"] == "join"

    await eventually(back)


async def test_deleting_a_chat_still_takes_everyone_out(
    api: ApiClient, chat: tuple[MatrixClient, MatrixClient, str]
) -> None:
    owner, client, room = chat
    r = await api.call("DELETE", f"/chats/{quote(room)}", token=owner.token)
    assert r.status in (200, 204), r.body

    async def gone() -> bool:
        r = await client.request("GET", "/_matrix/client/v3/joined_rooms")
        return room not in r.body.get("joined_rooms", [])

    await eventually(gone)


# -- the practice's record of it ------------------------------------------------------------


async def _refusals(api: ApiClient, practice_id: str) -> list[dict[str, Any]]:
    body = await api.ok("GET", "/audit", params={"practice_id": practice_id, "limit": "1000"})
    return [e for e in body["entries"] if e["action"] == "rule.refused"]


async def test_refusals_that_concern_the_practice_are_audited_once(
    api: ApiClient, practice_id: str, chat: tuple[MatrixClient, MatrixClient, str]
) -> None:
    owner, client, room = chat
    r = await client.request("POST", _room(room, "leave"), {})
    _refused(r, 403, CANNOT_LEAVE)
    r = await client.request(
        "PUT",
        f"/_matrix/client/v3/profile/{quote(client.user_id)}/displayname",
        {"displayname": OWNER_NAME},
    )
    _refused(r, 403, PROFILE_LOCKED)
    r = await client.send(room, {"body": "Which day?"}, "m.poll.start")
    _refused(r, 403, NOT_ALLOWED)
    # Too long is the client's own business: refused, not audited.
    r = await client.send(room, _text(_mark(LIMIT + 1)))
    _refused(r, 400, TOO_LONG)

    async def three() -> list[dict[str, Any]]:
        found = await _refusals(api, practice_id)
        return found if len(found) >= 3 else []

    entries = await eventually(three)
    assert len(entries) == 3, entries
    assert {e["actor"] for e in entries} == {client.user_id}
    by_rule = {e["details"]["rule"]: e for e in entries}
    assert set(by_rule) == {"leave", "profile", "event_type"}
    assert by_rule["leave"]["target"] == room
    assert by_rule["event_type"]["details"]["event_type"] == "m.poll.start"
    assert "Which day?" not in json.dumps(entries)


async def test_a_refusal_report_is_recorded_once_and_only_with_the_hs_token(
    api: ApiClient, practice_id: str, chat: tuple[MatrixClient, MatrixClient, str]
) -> None:
    owner, client, room = chat
    cfg = api.homeserver.config
    url = (
        str(cfg.appservice.address).rstrip("/")
        + "/_matrix/app/unstable/org.practicebridge/refusals/"
    )
    report = {"user_id": client.user_id, "rule": "leave", "room_id": room}
    refusal = "$" + uuid.uuid4().hex
    for token in ("wrong", None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with api.session.put(url + quote(refusal), json=report, headers=headers) as resp:
            assert resp.status == 403
    headers = {"Authorization": f"Bearer {cfg.appservice.hs_token}"}
    for _ in range(2):  # The module sends a report again until the bridge answers.
        async with api.session.put(url + quote(refusal), json=report, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
    async with api.session.put(
        url + "x", json={"user_id": client.user_id, "rule": "eat"}, headers=headers
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["errcode"] == "M_BAD_JSON"
    entries = [e for e in await _refusals(api, practice_id) if e["target"] == room]
    assert len(entries) == 1, entries
