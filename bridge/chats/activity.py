"""Pipeline effects on chats: last-message time for the chat list, and who has read what.

Runs inside the pipeline's transaction for each batch of stored events, so the chat list never
needs one request per room and a redelivered event changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mautrix.util.async_db import Connection

from bridge.events import QueuedEvent

from . import facts
from .store import ChatStore


class ChatActivity:
    def __init__(
        self,
        chats: ChatStore,
        bot: str,
        is_command: Callable[[str, dict[str, Any]], bool] = lambda _s, _c: False,
    ) -> None:
        self.chats = chats
        self.bot = bot
        # Staff bot commands are redacted at once: they are not messages of the chat.
        self.is_command = is_command

    async def __call__(self, conn: Connection, events: list[QueuedEvent]) -> None:
        messages = [
            m
            for m in facts.messages(events, self.bot)
            # An edit is no new message; an automatic reply is sent for an absent
            # practitioner: they have read nothing, written nothing.
            if not m.edit and not m.auto_reply and not self.is_command(m.sender, m.content)
        ]
        receipts = facts.receipts(events)
        if not messages and not receipts:
            return
        rooms = {m.room_id for m in messages} | {r.room_id for r in receipts}
        chats = await self.chats.live_rooms(conn, rooms)
        if not chats:
            return
        latest: dict[str, facts.Message] = {}
        for m in messages:
            if m.room_id in chats and m.ts >= latest.get(m.room_id, m).ts:
                latest[m.room_id] = m
        await self.chats.record_activity(
            conn, [(m.room_id, m.ts, m.sender) for m in latest.values()]
        )
        # Writing in a chat means having read it; so does a receipt.
        reads = [facts.Read(m.sender, m.room_id, m.ts) for m in messages]
        await self.chats.record_reads(
            conn, [r for r in facts.latest_reads([*reads, *receipts]) if r.room_id in chats]
        )
