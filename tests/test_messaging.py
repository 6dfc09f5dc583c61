"""Every messaging feature of the product, through real Matrix sessions in a practice's chat.

Each test has a staff member and a client with sessions minted by the bridge exactly as a portal
gets them (``POST /practices/{id}/sessions``), in a chat the bridge created, against the real
Synapse with the practice modules loaded. Each asserts what the *other* side actually receives:
the event as fetched or synced by them, the relation, the redaction, the bytes of a download.
docs/frontend.md shows these requests and events.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.clients import ApiClient, MatrixClient, Reply, eventually
from tests.media import (
    Syncer,
    download,
    event,
    media_path,
    receipts_of,
    sample_pdf,
    sample_png,
    sample_wav,
    upload,
)

pytestmark = pytest.mark.synapse_workers


async def _chat(
    api: ApiClient, practice_id: str, **setup: Any
) -> tuple[MatrixClient, MatrixClient, str]:
    """Practitioner s1 and client c1 with their portal sessions, and their 1:1 chat."""
    staff, client = await api.staff_and_client(practice_id, **setup)
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    assert r.status in (200, 201), r.body
    return staff, client, str(r.body["chat_id"])


async def _synced(room: str, event_id: str, reader: MatrixClient) -> dict[str, Any]:
    """The event as it comes down ``reader``'s /sync, as a frontend would show it."""
    return await Syncer(reader).wait_for_event(room, event_id)


async def _state(mc: MatrixClient, room: str, event_type: str, content: Any = None) -> Reply:
    path = f"/_matrix/client/v3/rooms/{quote(room)}/state/{event_type}/"
    if content is None:
        return await mc.request("GET", path)
    return await mc.request("PUT", path, content)


async def _redact(mc: MatrixClient, room: str, event_id: str, reason: str | None = None) -> Reply:
    body = {"reason": reason} if reason else {}
    return await mc.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room)}/redact/{quote(event_id)}/{uuid.uuid4().hex}",
        body,
    )


async def _receipt(mc: MatrixClient, room: str, receipt_type: str, event_id: str) -> None:
    r = await mc.request(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room)}/receipt/{receipt_type}/{quote(event_id)}",
        {},
    )
    assert r.status == 200, r.body


async def _chat_item(api: ApiClient, mc: MatrixClient, room: str, **params: str) -> Any:
    r = await api.call("GET", "/chats", token=mc.token, params=params or None)
    assert r.status == 200, r.body
    items = [c for c in r.body["chats"] if c["chat_id"] == room]
    return items[0] if items else None


# -- 1. text -----------------------------------------------------------------------------------


async def test_text_messages_reach_the_other_side_both_ways(
    api: ApiClient, practice_id: str
) -> None:
    staff, client, room = await _chat(api, practice_id)
    # The Enter key is the frontend's to handle; it reads the user's choice from the settings
    # (or straight from their account data).
    r = await api.call("PUT", "/settings", {"enter_key": "newline"}, token=client.token)
    assert r.status == 200 and r.body["enter_key"] == "newline", r.body
    prefs = await client.request(
        "GET",
        f"/_matrix/client/v3/user/{quote(client.user_id)}/account_data/"
        "org.practicebridge.preferences",
    )
    assert prefs.body["enter_key"] == "newline"
    r = await api.call("GET", "/settings", token=staff.token)
    assert r.body["enter_key"] == "send"

    client_sync, staff_sync = Syncer(client), Syncer(staff)
    await client_sync.poll()
    await staff_sync.poll()
    hello = {"msgtype": "m.text", "body": "Hello Maria, how are you feeling today?"}
    hello_id = await staff.sent(room, hello)
    got = await client_sync.wait_for_event(room, hello_id)
    assert (got["type"], got["sender"], got["content"]) == (
        "m.room.message",
        staff.user_id,
        hello,
    )

    answer = {"msgtype": "m.text", "body": "Much better, thank you.\nSee you on Tuesday!"}
    answer_id = await client.sent(room, answer)
    got = await staff_sync.wait_for_event(room, answer_id)
    assert (got["sender"], got["content"]) == (client.user_id, answer)
    assert (await event(staff, room, answer_id))["content"] == answer


# -- 2. attachments ----------------------------------------------------------------------------


async def test_documents_and_photos_are_sent_and_downloaded_within_the_practice(
    api: ApiClient, practice_id: str
) -> None:
    staff, client, room = await _chat(api, practice_id)
    await api.setup_practice(f"{practice_id}x")
    outsider = await api.session_for(f"{practice_id}x", staff_id="s1")

    pdf = sample_pdf()
    r = await upload(staff, pdf, "application/pdf", "Nutrition plan.pdf")
    assert r.status == 200, r.body
    document = {
        "msgtype": "m.file",
        "body": "Nutrition plan.pdf",
        "filename": "Nutrition plan.pdf",
        "url": r.body["content_uri"],
        "info": {"mimetype": "application/pdf", "size": len(pdf)},
    }
    document_id = await staff.sent(room, document)

    png = sample_png(32, 24)
    r = await upload(client, png, "image/png", "photo.png")
    assert r.status == 200, r.body
    photo = {
        "msgtype": "m.image",
        "body": "photo.png",
        "url": r.body["content_uri"],
        "info": {"mimetype": "image/png", "size": len(png), "w": 32, "h": 24},
    }
    photo_id = await client.sent(room, photo)

    # Each side receives the other's message as sent, and downloads the same bytes.
    assert (await event(client, room, document_id))["content"] == document
    assert (await event(staff, room, photo_id))["content"] == photo
    got = await download(client, media_path(document["url"]))
    assert (got.status, got.body) == (200, pdf)
    assert got.headers["Content-Type"] == "application/pdf"
    assert "Nutrition%20plan.pdf" in got.headers["Content-Disposition"]
    got = await download(staff, media_path(photo["url"]))
    assert (got.status, got.body, got.headers["Content-Type"]) == (200, png, "image/png")
    thumbnail = media_path(photo["url"], "thumbnail")
    size = {"width": "16", "height": "16", "method": "scale"}
    got = await download(staff, thumbnail, size)
    assert got.status == 200 and got.headers["Content-Type"].startswith("image/")

    # Someone of another practice cannot fetch either file, nor a thumbnail.
    for path in (media_path(document["url"]), media_path(photo["url"])):
        got = await download(outsider, path)
        assert (got.status, got.json["errcode"]) == (404, "M_NOT_FOUND")
    got = await download(outsider, thumbnail, size)
    assert (got.status, got.json["errcode"]) == (404, "M_NOT_FOUND")


# -- 3. voice notes ----------------------------------------------------------------------------


async def test_voice_note_plays_back_on_the_other_side(api: ApiClient, practice_id: str) -> None:
    staff, client, room = await _chat(api, practice_id)
    audio = sample_wav(seconds=1.5)
    r = await upload(client, audio, "audio/wav", "Voice message.wav")
    assert r.status == 200, r.body
    waveform = [0, 120, 512, 1024, 880, 300, 40, 0]
    voice = {
        "msgtype": "m.audio",
        "body": "Voice message",
        "url": r.body["content_uri"],
        "info": {"mimetype": "audio/wav", "size": len(audio), "duration": 1500},
        "org.matrix.msc1767.audio": {"duration": 1500, "waveform": waveform},
        "org.matrix.msc3245.voice": {},
    }
    voice_id = await client.sent(room, voice)

    got = await _synced(room, voice_id, staff)
    assert got["content"] == voice
    assert "org.matrix.msc3245.voice" in got["content"]
    assert got["content"]["org.matrix.msc1767.audio"] == {"duration": 1500, "waveform": waveform}
    played = await download(staff, media_path(got["content"]["url"]))
    assert (played.status, played.body) == (200, audio)
    assert played.headers["Content-Type"] == "audio/wav"


# -- 4. replies --------------------------------------------------------------------------------


async def test_reply_keeps_the_original_in_the_room_and_in_the_export(
    api: ApiClient, practice_id: str
) -> None:
    staff, client, room = await _chat(api, practice_id)
    original_id = await staff.sent(
        room, {"msgtype": "m.text", "body": "Remember to drink enough water."}
    )
    reply = {
        "msgtype": "m.text",
        "body": f"> <{staff.user_id}> Remember to drink enough water.\n\nI will, thanks!",
        "format": "org.matrix.custom.html",
        "formatted_body": (
            f'<mx-reply><blockquote><a href="https://matrix.to/#/{room}/{original_id}">'
            f'In reply to</a> <a href="https://matrix.to/#/{staff.user_id}">{staff.user_id}</a>'
            "<br>Remember to drink enough water.</blockquote></mx-reply>I will, thanks!"
        ),
        "m.relates_to": {"m.in_reply_to": {"event_id": original_id}},
    }
    reply_id = await client.sent(room, reply)

    got = await event(staff, room, reply_id)
    assert got["content"] == reply
    assert got["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == original_id
    quoted = await event(staff, room, original_id)
    assert quoted["content"]["body"] == "Remember to drink enough water."

    # The export shows the reply's own text and what it answers.
    async def exported() -> list[dict[str, str]]:
        async with api.session.get(
            f"{api.base}/chats/{quote(room)}/export",
            params={"format": "csv"},
            headers={"Authorization": f"Bearer {staff.token}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            text = (await resp.read()).decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        return [row for row in rows if row["Event ID"] == reply_id]

    (row,) = await eventually(exported)
    assert row["Text"] == "I will, thanks!"
    assert row["In reply to"].startswith("Staff s1, ")
    assert row["In reply to"].endswith(": Remember to drink enough water.")


# -- 5. reactions ------------------------------------------------------------------------------


async def test_reactions_added_seen_removed_and_no_duplicates(
    api: ApiClient, practice_id: str
) -> None:
    staff, client, room = await _chat(api, practice_id)
    message_id = await client.say(room, "I walked 10k steps!")

    def reaction(key: str) -> dict[str, Any]:
        return {"m.relates_to": {"rel_type": "m.annotation", "event_id": message_id, "key": key}}

    async def reactions(mc: MatrixClient) -> list[tuple[str, str]]:
        r = await mc.request(
            "GET",
            f"/_matrix/client/v1/rooms/{quote(room)}/relations/{quote(message_id)}/m.annotation",
        )
        assert r.status == 200, r.body
        return sorted((e["sender"], e["content"]["m.relates_to"]["key"]) for e in r.body["chunk"])

    thumbs_id = await staff.sent(room, reaction("👍"), "m.reaction")
    got = await _synced(room, thumbs_id, client)
    assert (got["type"], got["sender"], got["content"]) == (
        "m.reaction",
        staff.user_id,
        reaction("👍"),
    )
    await client.sent(room, reaction("❤️"), "m.reaction")
    assert await reactions(staff) == sorted([(staff.user_id, "👍"), (client.user_id, "❤️")])

    # The same reaction twice is refused.
    r = await staff.send(room, reaction("👍"), "m.reaction")
    assert (r.status, r.errcode) == (400, "M_DUPLICATE_ANNOTATION"), r.body

    # Clicking it again removes it: the frontend redacts the reaction event.
    r = await _redact(staff, room, thumbs_id)
    assert r.status == 200, r.body
    gone = await event(client, room, thumbs_id)
    assert gone["content"] == {}
    assert gone["unsigned"]["redacted_because"]["sender"] == staff.user_id
    assert await reactions(client) == [(client.user_id, "❤️")]
    # ... and it may be added again afterwards.
    await staff.sent(room, reaction("👍"), "m.reaction")
    assert await reactions(client) == sorted([(staff.user_id, "👍"), (client.user_id, "❤️")])


# -- 6. pinned messages ------------------------------------------------------------------------


async def test_staff_pin_and_unpin_messages_clients_read_but_cannot_pin(
    api: ApiClient, practice_id: str
) -> None:
    staff, client, room = await _chat(api, practice_id)
    plan_id = await staff.say(room, "Your plan: 3 walks a week")
    other_id = await client.say(room, "Got it")

    r = await _state(staff, room, "m.room.pinned_events", {"pinned": [plan_id]})
    assert r.status == 200, r.body
    pin_event = r.body["event_id"]
    got = await _synced(room, pin_event, client)
    assert (got["type"], got["state_key"], got["sender"]) == (
        "m.room.pinned_events",
        "",
        staff.user_id,
    )
    assert got["content"] == {"pinned": [plan_id]}
    for mc in (staff, client):
        assert (await _state(mc, room, "m.room.pinned_events")).body == {"pinned": [plan_id]}

    # A client cannot pin (or unpin); the pins stay as they were.
    r = await _state(client, room, "m.room.pinned_events", {"pinned": [plan_id, other_id]})
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), r.body
    r = await _state(client, room, "m.room.pinned_events", {"pinned": []})
    assert r.status == 403
    assert (await _state(staff, room, "m.room.pinned_events")).body == {"pinned": [plan_id]}

    r = await _state(staff, room, "m.room.pinned_events", {"pinned": []})
    assert r.status == 200, r.body
    assert (await _state(client, room, "m.room.pinned_events")).body == {"pinned": []}


# -- 7. deleting -------------------------------------------------------------------------------


async def test_users_delete_their_own_messages_only(api: ApiClient, practice_id: str) -> None:
    staff, client, room = await _chat(api, practice_id)
    staff_msg = await staff.say(room, "Session moved to 5pm")
    mistake = await client.say(room, "Wrong chat, sorry")

    r = await _redact(client, room, mistake, reason="Sent by mistake")
    assert r.status == 200, r.body
    redaction_id = r.body["event_id"]
    got = await _synced(room, redaction_id, staff)
    assert (got["type"], got["redacts"], got["sender"]) == (
        "m.room.redaction",
        mistake,
        client.user_id,
    )
    deleted = await event(staff, room, mistake)
    assert deleted["content"] == {}
    because = deleted["unsigned"]["redacted_because"]
    assert (because["sender"], because["content"]["reason"]) == (client.user_id, "Sent by mistake")

    # Nobody deletes someone else's message: not the client, not the staff member.
    r = await _redact(client, room, staff_msg)
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), r.body
    other = await client.say(room, "See you then")
    r = await _redact(staff, room, other)
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), r.body
    assert (await event(client, room, staff_msg))["content"]["body"] == "Session moved to 5pm"
    assert (await event(client, room, other))["content"]["body"] == "See you then"


# -- 8. read receipts --------------------------------------------------------------------------


async def test_client_receipts_reach_staff_and_staff_read_privately(
    api: ApiClient, practice_id: str
) -> None:
    staff, client, room = await _chat(api, practice_id)
    staff_sync, client_sync = Syncer(staff), Syncer(client)
    await staff_sync.poll()
    await client_sync.poll()
    plan_id = await staff.say(room, "Your plan is ready")
    (item,) = [m for m in (await _chat_item(api, staff, room))["members"] if m["kind"] == "client"]
    assert item["last_read_ts"] is None

    # The client reads it with a public receipt: the staff member's app shows "read".
    await _receipt(client, room, "m.read", plan_id)
    receipt = await staff_sync.wait_for(
        room, lambda evs: receipts_of(evs, "m.read").get(client.user_id), "ephemeral"
    )
    assert receipt["event_id"] == plan_id

    # The bridge recorded it from the ephemeral event it received: the chat list says when.
    async def last_read() -> Any:
        chat = await _chat_item(api, staff, room)
        (member,) = [m for m in chat["members"] if m["kind"] == "client"]
        return member["last_read_ts"]

    assert await eventually(last_read) == receipt["ts"]

    # Staff read privately: their unread state clears, the client sees no receipt of theirs.
    question_id = await client.say(room, "Any tips?")

    async def unread() -> bool:
        return bool((await _chat_item(api, staff, room))["unread"])

    assert await eventually(unread) is True
    await _receipt(staff, room, "m.read.private", question_id)
    # (It reaches the bridge through the staff member's followed sync, a moment after Synapse
    # stored it.)

    async def read() -> bool:
        return not await unread()

    assert await eventually(read)
    own = await staff_sync.wait_for(
        room, lambda evs: receipts_of(evs, "m.read.private").get(staff.user_id), "ephemeral"
    )
    assert own["event_id"] == question_id  # only the staff member's own sync carries it

    answer_id = await staff.say(room, "Sleep well.")
    await client_sync.wait_for_event(room, answer_id)
    seen = client_sync.events(room, "ephemeral")
    assert receipts_of(seen, "m.read") == {client.user_id: receipt}
    assert staff.user_id not in receipts_of(seen, "m.read.private")


# -- 9. mark as unread -------------------------------------------------------------------------


async def test_marked_unread_shows_in_the_unread_filter(api: ApiClient, practice_id: str) -> None:
    staff, client, room = await _chat(api, practice_id)
    account_data = (
        f"/_matrix/client/v3/user/{quote(staff.user_id)}/rooms/{quote(room)}"
        "/account_data/m.marked_unread"
    )

    async def unread_ids(mc: MatrixClient) -> list[str]:
        r = await api.call("GET", "/chats", token=mc.token, params={"filter": "unread"})
        assert r.status == 200, r.body
        return [c["chat_id"] for c in r.body["chats"]]

    assert await unread_ids(staff) == []
    # A frontend marks the chat unread in Matrix; the bridge's list follows.
    r = await staff.request("PUT", account_data, {"unread": True})
    assert r.status == 200, r.body
    # (With Synapse workers the process the bridge reads from learns of it a moment later.)
    assert await eventually(lambda: unread_ids(staff)) == [room]
    assert (await _chat_item(api, staff, room))["unread"] is True
    # The flag is the staff member's own: the client's list does not change.
    assert await unread_ids(client) == []

    # Through the API, the same account data is written.
    r = await api.call("DELETE", f"/chats/{quote(room)}/unread", token=staff.token)
    assert r.status == 200, r.body
    assert (await staff.request("GET", account_data)).body == {"unread": False}
    assert await unread_ids(staff) == []
    r = await api.call("PUT", f"/chats/{quote(room)}/unread", token=staff.token)
    assert r.status == 200, r.body
    assert (await staff.request("GET", account_data)).body == {"unread": True}
    assert await unread_ids(staff) == [room]


# -- 10. family records ------------------------------------------------------------------------


async def test_primary_answers_a_family_members_chat_and_staff_see_who_it_is_about(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id, clients=("parent",))
    r = await api.put_client(
        practice_id, "kid", name="Leo", email="leo@example.com", family_primary_id="parent"
    )
    assert r.status == 201, r.body
    staff = await api.session_for(practice_id, staff_id="s1")
    parent = await api.session_for(practice_id, client_id="parent")
    r = await api.call("POST", "/chats/direct", {"client_id": "kid"}, token=staff.token)
    assert r.status == 201, r.body
    room = r.body["chat_id"]

    question = {"msgtype": "m.text", "body": "How is Leo sleeping this week?"}
    question_id = await staff.sent(room, question)
    got = await _synced(room, question_id, parent)
    assert got["content"] == question
    answer = {"msgtype": "m.text", "body": "Much better since Monday."}
    answer_id = await parent.sent(room, answer)
    got = await event(staff, room, answer_id)
    assert (got["sender"], got["content"]) == (parent.user_id, answer)

    # Which family member the chat is about: in the chat state and in the chat list.
    chat = (await _state(staff, room, "org.practicebridge.chat")).body
    assert chat["subject_client_ids"] == ["kid"]
    assert chat["subjects"] == [{"client_id": "kid", "name": "Leo", "family_primary_id": "parent"}]
    item = await _chat_item(api, staff, room)
    assert item["name"] == "Leo" and item["subject_client_ids"] == ["kid"]
    (member,) = [m for m in item["members"] if m["kind"] == "client"]
    assert (member["client_id"], member["user_id"], member["family_primary_id"]) == (
        "kid",
        None,
        "parent",
    )
    # The primary's reading counts as the family member's.
    staff_sync = Syncer(staff)
    await _receipt(parent, room, "m.read", question_id)
    receipt = await staff_sync.wait_for(
        room, lambda evs: receipts_of(evs, "m.read").get(parent.user_id), "ephemeral"
    )

    async def read_at_the_receipt() -> bool:
        chat = await _chat_item(api, staff, room)
        (member,) = [m for m in chat["members"] if m["kind"] == "client"]
        return bool(member["last_read_ts"] == receipt["ts"])

    assert await eventually(read_at_the_receipt)
    parent_item = await _chat_item(api, parent, room)
    assert parent_item["subject_client_ids"] == ["kid"]
