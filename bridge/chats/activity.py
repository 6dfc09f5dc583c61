"""Pipeline effects on chats: last-message time for the chat list, and who has read what.

Runs inside the pipeline's transaction for each stored event, so the chat list never needs one
request per room and a redelivered event changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mautrix.util.async_db import Connection

from bridge.autoresponder.decide import AUTO_REPLY_KEY
from bridge.events import QueuedEvent

from .store import ChatStore

# Events that count as a new message in a chat.
MESSAGE_TYPES = frozenset({"m.room.message", "m.sticker", "m.room.encrypted"})


class ChatActivity:
    def __init__(
        self,
        chats: ChatStore,
        bot: str,
        is_command: Callable[[dict[str, Any]], bool] = lambda _: False,
    ) -> None:
        self.chats = chats
        self.bot = bot
        # Staff bot commands are redacted at once: they are not messages of the chat.
        self.is_command = is_command

    async def __call__(self, conn: Connection, ev: QueuedEvent) -> None:
        payload = ev.payload
        if payload.get("_edu"):
            if payload.get("type") == "m.receipt" and ev.room_id:
                await self._receipts(conn, ev.room_id, payload.get("content"))
            return
        if payload.get("type") not in MESSAGE_TYPES or "state_key" in payload:
            return
        sender, ts = payload.get("sender"), payload.get("origin_server_ts")
        if not isinstance(sender, str) or not isinstance(ts, int) or sender == self.bot:
            return
        if self.is_command(payload):
            return
        content = payload.get("content")
        if isinstance(content, dict) and AUTO_REPLY_KEY in content:
            return  # Sent for an absent practitioner: they have read nothing, written nothing.
        if await self.chats.record_activity(conn, ev.room_id, ts, sender):
            await self.chats.record_read(conn, sender, ev.room_id, ts)

    async def _receipts(self, conn: Connection, room_id: str, content: Any) -> None:
        if not isinstance(content, dict) or not await self.chats.is_chat(conn, room_id):
            return
        for receipts in content.values():
            if not isinstance(receipts, dict):
                continue
            for receipt_type in ("m.read", "m.read.private"):
                users = receipts.get(receipt_type)
                if not isinstance(users, dict):
                    continue
                for user_id, data in users.items():
                    ts = data.get("ts") if isinstance(data, dict) else None
                    if isinstance(user_id, str) and isinstance(ts, int):
                        await self.chats.record_read(conn, user_id, room_id, ts)
