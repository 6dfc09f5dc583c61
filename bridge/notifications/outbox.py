"""The outbox, written by the pipeline: every message that may need an email becomes rows.

Runs inside the transaction that marks the event processed, so a crash neither loses nor
doubles a row, and a redelivered event hits the unique (recipient, event) pair. For each message
of a chat it also records the message in the index (unread counts), and reading cancels what is
pending: a read receipt (public; private ones reach the worker through the user's /sync), or the
recipient writing in the chat.

No row is written for the sender themself, for the bot, for edits, for a message that broke a
practice rule (it is being undone), for recipients without access or with email alerts off, or
for an automatic reply to the client whose message it answers.
"""

from __future__ import annotations

import logging
from typing import Any

from mautrix.util.async_db import Connection

from bridge.autoresponder.decide import AUTO_REPLY_KEY
from bridge.clock import now_ms
from bridge.events import QueuedEvent
from bridge.identity import IdentityMapper

from .audience import Recipient, chat_audience, email_alerts_on
from .index import MessageIndex
from .store import OutboxStore

log = logging.getLogger("practice.outbox")
MESSAGE_TYPES = frozenset({"m.room.message", "m.sticker", "m.room.encrypted"})
RECEIPT_TYPES = ("m.read", "m.read.private")


class NotificationOutbox:
    def __init__(self, mapper: IdentityMapper, *, delay_ms: int, enabled: bool) -> None:
        self.mapper = mapper
        self.bot = mapper.bot_mxid
        self.delay_ms = delay_ms
        self.enabled = enabled

    async def __call__(self, conn: Connection, ev: QueuedEvent) -> None:
        payload = ev.payload
        if payload.get("_edu"):
            if payload.get("type") == "m.receipt" and ev.room_id:
                await self._receipts(conn, ev.room_id, payload.get("content"))
            return
        if "state_key" in payload or not ev.room_id:
            return
        event_type = payload.get("type")
        if event_type == "m.room.redaction":
            await self._redaction(conn, payload)
        elif event_type in MESSAGE_TYPES:
            await self._message(conn, ev, payload)

    async def _message(self, conn: Connection, ev: QueuedEvent, payload: dict[str, Any]) -> None:
        sender, ts = payload.get("sender"), payload.get("origin_server_ts")
        content = payload.get("content")
        if not isinstance(sender, str) or not isinstance(ts, int) or sender == self.bot:
            return
        if not isinstance(content, dict) or _is_edit(content):
            return
        if not await conn.fetchval(
            "SELECT 1 FROM chat WHERE room_id=$1 AND NOT deleted", ev.room_id
        ):
            return
        if await conn.fetchval("SELECT 1 FROM rule_violation WHERE event_id=$1", ev.event_id):
            return
        await MessageIndex.add(conn, ev.event_id, ev.room_id, sender, ts)
        auto_reply = self._is_auto_reply(content, sender)
        if not auto_reply:
            # Writing in a chat means having read it (an automatic reply is nobody writing).
            await OutboxStore.read_up_to(conn, sender, ev.room_id, ts, now_ms())
        if not self.enabled:
            return
        audience = await chat_audience(conn, ev.room_id)
        if audience is None:
            return
        skip = {sender}
        if auto_reply:
            skip |= await self._auto_reply_skips(conn, content, audience.recipients)
        candidates = [user_id for user_id in audience.recipients if user_id not in skip]
        wanted = await email_alerts_on(conn, candidates)
        for user_id in candidates:
            if user_id in wanted:
                await OutboxStore.add(
                    conn, user_id, ev.room_id, ev.event_id, sender, ts, ts + self.delay_ms
                )
        if wanted:
            log.debug("Outbox: %s in %s for %d recipients", ev.event_id, ev.room_id, len(wanted))

    def _is_auto_reply(self, content: dict[str, Any], sender: str) -> bool:
        """The autoresponder's reply, sent as the practitioner (nobody else's counts)."""
        who = self.mapper.parse(sender)
        marker = content.get(AUTO_REPLY_KEY)
        return isinstance(marker, dict) and who is not None and who.kind == "staff"

    async def _auto_reply_skips(
        self, conn: Connection, content: dict[str, Any], recipients: dict[str, Recipient]
    ) -> set[str]:
        """An automatic reply is not emailed to the writer of the message it answers."""
        trigger = content[AUTO_REPLY_KEY].get("in_reply_to_event_id")
        writer = await MessageIndex.sender_of(conn, trigger) if isinstance(trigger, str) else None
        if writer is not None:
            return {writer}
        # The answered message is unknown: leave out every client (replies go to clients only).
        return {user_id for user_id, r in recipients.items() if r.audience == "clients"}

    async def _redaction(self, conn: Connection, payload: dict[str, Any]) -> None:
        content = payload.get("content")
        redacts = payload.get("redacts")
        if isinstance(content, dict) and isinstance(content.get("redacts"), str):
            redacts = content["redacts"]  # Room versions 11 and later.
        if isinstance(redacts, str):
            await MessageIndex.remove(conn, redacts)
            await OutboxStore.withdraw(conn, redacts, now_ms())

    async def _receipts(self, conn: Connection, room_id: str, content: Any) -> None:
        if not isinstance(content, dict):
            return
        now = now_ms()
        for receipts in content.values():
            if not isinstance(receipts, dict):
                continue
            for receipt_type in RECEIPT_TYPES:
                users = receipts.get(receipt_type)
                if not isinstance(users, dict):
                    continue
                for user_id, data in users.items():
                    ts = data.get("ts") if isinstance(data, dict) else None
                    if isinstance(user_id, str) and isinstance(ts, int):
                        await OutboxStore.read_up_to(conn, user_id, room_id, ts, now)


def _is_edit(content: dict[str, Any]) -> bool:
    relates = content.get("m.relates_to")
    return isinstance(relates, dict) and relates.get("rel_type") == "m.replace"
