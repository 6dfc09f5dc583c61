"""What every chat is called in its members' Matrix apps: the room's ``m.room.name``.

A portal names a direct chat from the reader's side (``GET /chats``: the other person); a room
has one name for everyone, so the bridge names it for what it is, as the practice sees it:

- a 1:1 chat after its client (``Maria Lopez``);
- a family member's chat after the family member and their primary
  (``Lily Lopez (family of Maria Lopez)``);
- a group chat by its name.

Only the bot may name rooms (power levels). The name the bridge last wrote is kept
(``chat.room_name``), so a name is written when it changes: on creation, conversion, a client's
rename or family move, and once at start-up for chats from before names were written.
"""

from __future__ import annotations

import logging

from mautrix.types import RoomID

from bridge.directory import Client, DirectoryStore
from bridge.ports import Rooms

from .models import Chat
from .store import ChatStore

log = logging.getLogger("practice.chats.names")


def family_name(member: str, primary: str) -> str:
    return f"{member} (family of {primary})"


class RoomNames:
    def __init__(self, directory: DirectoryStore, chats: ChatStore, rooms: Rooms) -> None:
        self.directory = directory
        self.chats = chats
        self.rooms = rooms

    async def name_of(self, chat: Chat) -> str | None:
        """The room name the chat should have now."""
        if chat.kind == "group":
            return chat.name
        names = []
        for client_id in sorted(chat.client_ids):
            client = await self.directory.get_client(chat.practice_id, client_id)
            if client is not None:
                names.append(await self._client_name(client))
        return ", ".join(names) or chat.name

    async def _client_name(self, client: Client) -> str:
        if client.family_primary_id is None:
            return client.name
        primary = await self.directory.get_client(client.practice_id, client.family_primary_id)
        return family_name(client.name, primary.name) if primary else client.name

    async def created(self, room_id: RoomID, name: str | None) -> None:
        """The room was created with this name."""
        await self.chats.set_room_name(room_id, name)

    async def apply(self, chat: Chat) -> None:
        """Write the chat's name into its room if it is not the one written last."""
        name = await self.name_of(chat)
        if name is None or name == await self.chats.room_name(chat.room_id):
            return
        await self.rooms.send_state(chat.room_id, "m.room.name", {"name": name})
        await self.chats.set_room_name(chat.room_id, name)

    async def client_changed(self, old: Client | None, new: Client) -> None:
        """A client's name or family changed: so do the names of their chats and, for a
        primary, of their family members' chats."""
        if old is not None and (old.name, old.family_primary_id) == (
            new.name,
            new.family_primary_id,
        ):
            return
        ids = [new.client_id]
        ids += [c.client_id for c in await self.directory.list_family(new.practice_id, ids[0])]
        for chat in await self.chats.for_member(new.practice_id, "client", ids):
            await self._apply_logged(chat)

    async def catch_up(self) -> int:
        """Name every live chat the bridge has not named yet; return how many it named."""
        named = 0
        for room_id in await self.chats.unnamed_rooms():
            chat = await self.chats.get(room_id)
            if chat is not None and await self._apply_logged(chat):
                named += 1
        if named:
            log.info("Named %d chats in their rooms", named)
        return named

    async def _apply_logged(self, chat: Chat) -> bool:
        try:
            await self.apply(chat)
            return True
        except Exception:
            log.exception("Could not name %s", chat.room_id)
            return False
