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

from bridge.chats import facts
from bridge.chats.store import ChatStore
from bridge.clock import now_ms
from bridge.constants import AUTO_REPLY_KEY
from bridge.events import QueuedEvent
from bridge.identity import IdentityMapper

from .audience import Recipient, chat_audience, email_alerts_on
from .index import MessageIndex
from .store import OutboxStore

log = logging.getLogger("practice.outbox")


class NotificationOutbox:
    def __init__(
        self, mapper: IdentityMapper, chats: ChatStore, *, delay_ms: int, enabled: bool
    ) -> None:
        self.mapper = mapper
        self.chats = chats
        self.bot = mapper.bot_mxid
        self.delay_ms = delay_ms
        self.enabled = enabled

    async def __call__(self, conn: Connection, events: list[QueuedEvent]) -> None:
        now = now_ms()
        redacted = facts.redactions(events)
        if redacted:
            await MessageIndex.remove_many(conn, redacted)
            await OutboxStore.withdraw_many(conn, [event_id for _, event_id in redacted], now)
        messages = [m for m in facts.messages(events, self.bot) if not m.edit]
        receipts = facts.receipts(events)
        if not messages and not receipts:
            return
        rooms = {m.room_id for m in messages} | {r.room_id for r in receipts}
        chats = await self.chats.live_rooms(conn, rooms)
        messages = [m for m in messages if m.room_id in chats]
        await MessageIndex.add_many(conn, messages)
        if self.enabled and messages:
            await self._queue(conn, messages)
        # After queueing, so that a reply later in the batch cancels what it answers.
        # Writing in a chat means having read it (an automatic reply is nobody writing).
        reads = [
            facts.Read(m.sender, m.room_id, m.ts) for m in messages if not self._is_auto_reply(m)
        ]
        reads += [r for r in receipts if r.room_id in chats]
        await OutboxStore.read_up_to_many(conn, facts.latest_reads(reads), now)

    async def _queue(self, conn: Connection, messages: list[facts.Message]) -> None:
        audiences = {}
        for room_id in sorted({m.room_id for m in messages}):
            audience = await chat_audience(conn, room_id)
            if audience is not None:
                audiences[room_id] = audience
        everyone = sorted({u for a in audiences.values() for u in a.recipients})
        wanted = await email_alerts_on(conn, everyone)
        rows = []
        for m in messages:
            audience = audiences.get(m.room_id)
            if audience is None:
                continue
            skip = {m.sender}
            if self._is_auto_reply(m):
                skip |= await self._auto_reply_skips(
                    conn, m.room_id, m.content, audience.recipients
                )
            for user_id in audience.recipients:
                if user_id not in skip and user_id in wanted:
                    rows.append((user_id, m.room_id, m.event_id, m.sender, m.ts))
        await OutboxStore.add_many(conn, rows, self.delay_ms)
        if rows:
            log.debug("Outbox: %d rows for %d messages", len(rows), len(messages))

    def _is_auto_reply(self, m: facts.Message) -> bool:
        """The autoresponder's reply, sent as the practitioner (nobody else's counts)."""
        if not m.auto_reply:
            return False
        who = self.mapper.parse(m.sender)
        return who is not None and who.kind == "staff"

    async def _auto_reply_skips(
        self,
        conn: Connection,
        room_id: str,
        content: dict[str, Any],
        recipients: dict[str, Recipient],
    ) -> set[str]:
        """An automatic reply is not emailed to the writer of the message it answers."""
        trigger = content[AUTO_REPLY_KEY].get("in_reply_to_event_id")
        writer = (
            await MessageIndex.sender_of(conn, room_id, trigger)
            if isinstance(trigger, str)
            else None
        )
        if writer is not None:
            return {writer}
        # The answered message is unknown: leave out every client (replies go to clients only).
        return {user_id for user_id, r in recipients.items() if r.audience == "clients"}
