"""The bot's side of commands on Matrix: each staff member's private room, notices, files.

Replies go only to the private room, a direct room of the bot and one staff member, created on
first use (the member joins through the appservice, nothing to accept) or adopted when the
member opens a direct chat with the bot from their Matrix app. Every message the bot sends for
a command carries a transaction id derived from the command's event, so running a command
again after a crash does not post its replies twice (Synapse de-duplicates transaction ids).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from typing import Any
from urllib.parse import quote

from mautrix.api import Method, PathBuilder
from mautrix.appservice import AppService
from mautrix.errors import MatrixRequestError
from mautrix.types import RoomID, UserID

from bridge.ports import Rooms

from .helptext import WELCOME
from .store import CommandStore

log = logging.getLogger("practice.commands")
_V3 = "/_matrix/client/v3"
ROOM_NAME = "Practice bot"
TOPIC = "Your private room with the practice bot: replies to your !pb commands. Send !pb help."


def _q(value: str) -> str:
    return quote(value, safe="")


def txn_id(event_id: str, n: int) -> str:
    """A transaction id for the n-th message the bot sends for a command event."""
    return f"pbcmd-{hashlib.sha256(event_id.encode()).hexdigest()[:32]}-{n}"


class PrivateRooms:
    def __init__(self, az: AppService, rooms: Rooms, store: CommandStore) -> None:
        self.az = az
        self.rooms = rooms
        self.store = store
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def bot(self) -> UserID:
        return UserID(self.az.bot_mxid)

    def _api(self) -> Any:
        return self.az.intent.api

    # -- the private room ------------------------------------------------------------------

    async def room_of(self, user_id: UserID) -> RoomID:
        """The user's private room with the bot, created on first use."""
        async with self._locks[user_id]:
            room_id = await self.store.private_room(user_id)
            if room_id is not None:
                return room_id
            room_id = await self._create(user_id)
            await self.store.set_private_room(user_id, room_id)
            log.info("Opened a private room %s with %s", room_id, user_id)
            return room_id

    async def open_with_welcome(self, user_id: UserID) -> None:
        """Open the user's private room if they have none, its first message the list of
        commands (a Matrix app then shows it from the start)."""
        async with self._locks[user_id]:
            if await self.store.private_room(user_id) is not None:
                return
            room_id = await self._create(user_id)
            await self.store.set_private_room(user_id, room_id)
        digest = hashlib.sha256(room_id.encode()).hexdigest()[:32]
        await self.send_to_room(
            room_id,
            "m.room.message",
            {"msgtype": "m.notice", "body": WELCOME},
            f"pbwelcome-{digest}",
        )
        log.info("Opened a private room %s with %s for their Matrix app", room_id, user_id)

    async def _create(self, user_id: UserID) -> RoomID:
        """POST /createRoom (spec: Client-Server API, Room creation): a direct room in which
        only the bot invites, then the user joins as themselves."""
        resp = await self._api().request(
            Method.POST,
            PathBuilder(f"{_V3}/createRoom"),
            {
                "visibility": "private",
                "preset": "private_chat",
                "is_direct": True,
                "invite": [user_id],
                "name": ROOM_NAME,
                "topic": TOPIC,
                "power_level_content_override": {"invite": 100, "kick": 100, "ban": 100},
            },
        )
        room_id = RoomID(resp["room_id"])
        await self.rooms.join(room_id, user_id)
        await self._remember_direct(user_id, room_id)
        return room_id

    async def adopt(self, user_id: UserID, room_id: RoomID) -> str | None:
        """The user invited the bot: join, and keep the room as their private room if only the
        two are in it and it is not encrypted (the bot reads commands in plain text). Returns
        None when adopted, else why not."""
        await self._api().request(Method.POST, PathBuilder(f"{_V3}/rooms/{_q(room_id)}/join"), {})
        if await self.rooms.get_state(room_id, "m.room.encryption") is not None:
            return "it is encrypted, and I read commands only in plain text"
        if await self._members(room_id) - {self.bot, user_id}:
            return "someone else is in it, and my answers are for you alone"
        async with self._locks[user_id]:
            await self.store.set_private_room(user_id, room_id)
        log.info("Adopted %s as the private room of %s", room_id, user_id)
        return None

    async def _members(self, room_id: RoomID) -> set[str]:
        """Joined and invited members (spec: GET /rooms/{roomId}/members)."""
        resp = await self._api().request(
            Method.GET, PathBuilder(f"{_V3}/rooms/{_q(room_id)}/members")
        )
        return {
            ev.get("state_key")
            for ev in resp.get("chunk", [])
            if (ev.get("content") or {}).get("membership") in ("join", "invite")
        }

    async def leave(self, room_id: RoomID) -> None:
        """POST /rooms/{roomId}/leave as the bot (spec: Leaving rooms)."""
        try:
            await self._api().request(
                Method.POST, PathBuilder(f"{_V3}/rooms/{_q(room_id)}/leave"), {}
            )
        except MatrixRequestError as e:
            if e.http_status not in (403, 404):
                raise

    async def _remember_direct(self, user_id: UserID, room_id: RoomID) -> None:
        """The room goes into the user's m.direct under the bot (spec: Direct Messaging)."""
        content = await self.rooms.get_account_data(user_id, "m.direct")
        rooms = content.get(self.bot)
        rooms = list(rooms) if isinstance(rooms, list) else []
        if room_id not in rooms:
            content[self.bot] = rooms + [room_id]
            await self.rooms.set_account_data(user_id, "m.direct", content)

    # -- sending ---------------------------------------------------------------------------

    async def notice(self, user_id: UserID, text: str, html: str | None, txn: str) -> None:
        content: dict[str, Any] = {"msgtype": "m.notice", "body": text}
        if html is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = html
        await self.send(user_id, content, txn)

    async def send(self, user_id: UserID, content: dict[str, Any], txn: str) -> None:
        """Send into the user's private room; a room the bot lost is replaced once."""
        for attempt in (1, 2):
            room_id = await self.room_of(user_id)
            try:
                await self.send_to_room(room_id, "m.room.message", content, txn)
                return
            except MatrixRequestError as e:
                if attempt == 2 or e.http_status not in (403, 404):
                    raise
                log.warning("Private room %s of %s is gone; opening another", room_id, user_id)
                await self.store.drop_private_room(user_id, room_id)

    async def send_to_room(
        self, room_id: RoomID, event_type: str, content: dict[str, Any], txn: str
    ) -> None:
        """PUT /rooms/{roomId}/send/{eventType}/{txnId} as the bot (spec: Sending events)."""
        await self._api().request(
            Method.PUT,
            PathBuilder(f"{_V3}/rooms/{_q(room_id)}/send/{_q(event_type)}/{_q(txn)}"),
            content,
        )

    async def redact(self, room_id: RoomID, event_id: str, txn: str) -> None:
        """PUT /rooms/{roomId}/redact/{eventId}/{txnId} as the bot (spec: Redactions)."""
        await self._api().request(
            Method.PUT,
            PathBuilder(f"{_V3}/rooms/{_q(room_id)}/redact/{_q(event_id)}/{_q(txn)}"),
            {"reason": "Bot command"},
        )

    async def upload(self, data: Any, content_type: str, filename: str, size: int | None) -> str:
        """POST /_matrix/media/v3/upload as the bot (spec: Content repository)."""
        return str(
            await self.az.intent.upload_media(
                data, mime_type=content_type, filename=filename, size=size
            )
        )
