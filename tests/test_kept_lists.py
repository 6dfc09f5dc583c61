"""A person's chat list kept in a process follows every change made by any process.

Two databases opened on the same data stand for two bridge processes: one writes as the
pipeline and the API do (a message, a read, a pin, a chat started or deleted), the other keeps
the person's list and reads only what changed since. A write still uncommitted while the list
is read is there on the next one (the horizon, bridge/chats/stamps.py)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

from bridge.chats.actors import Actor
from bridge.chats.facts import Read
from bridge.chats.kept import KeptLists
from bridge.chats.listing import ChatDirectory
from bridge.chats.models import Chat, UserChatState
from bridge.chats.store import ChatStore
from bridge.directory import DirectoryStore, Practice, Staff
from bridge.events.sqlite import write_transaction

ME = UserID("@s1:x")


def _chat(n: int) -> Chat:
    return Chat(
        RoomID(f"!r{n}:x"), "p1", "direct", None, "s1", staff_ids=["s1"], client_ids=[f"c{n}"]
    )


async def test_a_kept_list_follows_every_change_of_any_process(
    two_processes: tuple[Database, Database],
) -> None:
    one, other = two_processes
    await DirectoryStore(one).upsert_practice(Practice("p1", "Practice", "pro", "UTC"))
    writer = ChatStore(one)
    for n in (1, 2, 3):
        await writer.insert(_chat(n))
    staff = Staff("p1", "s1", ME, "Sam", "s1@x", "owner")
    me = Actor(ME, "p1", staff=staff)
    kept = KeptLists(ChatStore(other))
    first = await kept.get(me)
    assert sorted(first.keys) == ["!r1:x", "!r2:x", "!r3:x"] and first.states == {}
    assert await kept.get(me) is not first  # (read again: nothing changed, same rows)
    assert (await kept.get(me)).keys is first.keys

    # A message, then the person's own read and pin, written by the other process.
    async with write_transaction(one) as conn:
        await ChatStore.record_activity(conn, [("!r1:x", 100, "@c1:x")])
    listed = await kept.get(me)
    assert listed.keys["!r1:x"][1:3] == (100, "@c1:x")
    assert listed.keys["!r2:x"] == first.keys["!r2:x"]
    async with write_transaction(one) as conn:
        await ChatStore.record_reads(conn, [Read(ME, "!r1:x", 150)])
    await writer.save_user_states(ME, {"!r2:x": UserChatState(favourite=True)})
    listed = await kept.get(me)
    assert listed.states["!r1:x"].read_ts == 150
    assert listed.states["!r2:x"].favourite

    # Someone else's read changes nothing of this list.
    async with write_transaction(one) as conn:
        await ChatStore.record_reads(conn, [Read("@c3:x", "!r3:x", 160)])
    assert (await kept.get(me)).states == listed.states

    # Written while the list is read, committed after: on the next list.
    async with write_transaction(one) as conn:
        await ChatStore.record_activity(conn, [("!r3:x", 200, "@c3:x")])
        await ChatStore.record_reads(conn, [Read(ME, "!r2:x", 190)])
        # (In a context of its own, as another process: mautrix hands a task the
        # connection of a transaction open in its context.)
        during = await asyncio.create_task(kept.get(me), context=contextvars.Context())
        assert during.keys["!r3:x"][1] == 0 and during.states["!r2:x"].read_ts == 0
    after = await kept.get(me)
    assert after.keys["!r3:x"][1:3] == (200, "@c3:x")
    assert after.states["!r2:x"] == UserChatState(favourite=True, read_ts=190)

    # An older message arriving late moves nothing back.
    async with write_transaction(one) as conn:
        await ChatStore.record_activity(conn, [("!r3:x", 180, "@c3:x")])
    assert (await kept.get(me)).keys["!r3:x"][1] == 200

    # A chat started, then one deleted: the list is read again in full.
    await writer.insert(_chat(4))
    assert sorted((await kept.get(me)).keys) == ["!r1:x", "!r2:x", "!r3:x", "!r4:x"]
    await writer.mark_deleted(RoomID("!r2:x"))
    listed = await kept.get(me)
    assert sorted(listed.keys) == ["!r1:x", "!r3:x", "!r4:x"]
    assert "!r2:x" not in listed.states and listed.states["!r1:x"].read_ts == 150

    # Each process keeps its own list; a second one starts from the database as it is.
    again = await KeptLists(ChatStore(one)).get(me)
    assert again.keys == listed.keys and again.states == listed.states


class _Mirror:
    """The user-state mirror as the chat list uses it: the person is followed; unhiding fails
    the first time (Synapse unreachable, say), then writes what the mirror would."""

    def __init__(self, chats: ChatStore) -> None:
        self.chats = chats
        self.unhides: list[str] = []

    def live(self, user_id: str) -> bool:
        return True

    async def unhide_before(self, user_id: str, room_id: str, ts: int) -> None:
        self.unhides.append(room_id)
        if len(self.unhides) == 1:
            raise ConnectionError("Synapse is not there")
        await self.chats.save_user_states(user_id, {room_id: UserChatState()})


async def test_a_chat_written_in_after_it_was_hidden_is_unhidden_until_it_is(
    database_factory: Callable[[], Database],
) -> None:
    db = database_factory()
    await db.start()
    try:
        directory, chats = DirectoryStore(db), ChatStore(db)
        await directory.upsert_practice(Practice("p1", "Practice", "pro", "UTC"))
        staff = Staff("p1", "s1", ME, "Sam", "s1@x", "owner")
        await directory.upsert_staff(staff)
        await chats.insert(_chat(1))
        await chats.insert(_chat(2))
        await chats.save_user_states(ME, {"!r1:x": UserChatState(hidden_at=50)})
        mirror = _Mirror(chats)
        listing = ChatDirectory(directory, chats, mirror, "@bot:x")  # type: ignore[arg-type]
        me = Actor(ME, "p1", staff=staff)

        async def listed() -> list[str]:
            page = await listing.list_chats(me, "all", False)
            await asyncio.gather(*listing._background)
            return [c["chat_id"] for c in page.chats]

        assert await listed() == ["!r2:x"] and mirror.unhides == []
        async with write_transaction(db) as conn:
            await ChatStore.record_activity(conn, [("!r1:x", 100, "@c1:x")])
        # Shown at once; the hidden tag is dropped in the background: that fails, and the next
        # list (nothing else changed) tries again, which works; then nothing is left to do.
        assert await listed() == ["!r1:x", "!r2:x"] and mirror.unhides == ["!r1:x"]
        assert await listed() == ["!r1:x", "!r2:x"] and mirror.unhides == ["!r1:x"] * 2
        assert (await chats.user_states(ME))["!r1:x"].hidden_at is None
        assert await listed() == ["!r1:x", "!r2:x"] and len(mirror.unhides) == 2
    finally:
        await db.stop()
