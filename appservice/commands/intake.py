"""The pipeline handler: recognise commands and record them as jobs, nothing slow.

Runs inside the pipeline's transaction for every stored event. A ``!pb`` text message from an
active staff member in a chat the bridge owns, or in their private room with the bot, becomes a
``bot_command`` row in that same transaction; the worker runs it after the commit. Anything else
(clients, people outside the practice, rooms the bridge does not own) is left alone.

Membership events keep private rooms private: a staff member inviting the bot into a direct room
makes it their private room (after the bot checks nobody else is in it); when they leave it, or
someone else is let in, the bridge stops using it and the bot leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mautrix.util.async_db import Connection

from bridge.events import QueuedEvent

from .parse import INVITED, LEAVE, parse_command
from .store import CommandStore

log = logging.getLogger("practice.commands")


class CommandIntake:
    def __init__(
        self, store: CommandStore, bot: str, recorded: Callable[[str, int], None]
    ) -> None:
        self.store = store
        self.bot = bot
        self.recorded = recorded

    async def __call__(self, conn: Connection, ev: QueuedEvent) -> None:
        payload = ev.payload
        if ev.ephemeral or not ev.room_id:
            return
        sender = payload.get("sender")
        if not isinstance(sender, str) or sender == self.bot:
            return
        event_type = payload.get("type")
        if event_type == "m.room.message" and "state_key" not in payload:
            await self._message(conn, ev, sender)
        elif event_type == "m.room.member" and isinstance(payload.get("state_key"), str):
            await self._membership(conn, ev, sender)

    async def _message(self, conn: Connection, ev: QueuedEvent, sender: str) -> None:
        command = parse_command(ev.payload.get("content"))
        if command is None or not await self.store.is_active_staff(conn, sender):
            return
        if not await self.store.is_live_chat(conn, ev.room_id):
            if await self.store.private_room_owner(conn, ev.room_id) != sender:
                return
        await self._record(conn, ev, sender, command.name, command.args)

    async def _membership(self, conn: Connection, ev: QueuedEvent, sender: str) -> None:
        target = ev.payload["state_key"]
        content = ev.payload.get("content")
        membership = content.get("membership") if isinstance(content, dict) else None
        if target == self.bot:
            if membership == "invite" and await self.store.is_active_staff(conn, sender):
                await self._record(conn, ev, sender, INVITED, "")
            return
        owner = await self.store.private_room_owner(conn, ev.room_id)
        if owner is None:
            return
        left = target == owner and membership in ("leave", "ban")
        intruder = target != owner and membership in ("invite", "join", "knock")
        if left or intruder:
            await self.store.forget_private_room(conn, ev.room_id)
            await self._record(conn, ev, owner, LEAVE, "")
            log.info("The private room %s of %s is no longer private", ev.room_id, owner)

    async def _record(
        self, conn: Connection, ev: QueuedEvent, sender: str, name: str, args: str
    ) -> None:
        await self.store.record(conn, ev.event_id, ev.room_id, sender, name, args)
        log.info("Command %s from %s in %s recorded", name, sender, ev.room_id)
        self.recorded(ev.event_id, ev.seq)
