"""Each member's ``m.direct`` account data (spec: Direct Messaging), kept by the bridge.

``m.direct`` is one JSON object per user, read and written whole, so two chats started at once
for the same practitioner would each write their own copy and lose the other's room. Changes to
one user's ``m.direct`` therefore wait for each other (within this process: see
docs/scaling.md), and a bulk start writes the practitioner's once for all its chats.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence

from mautrix.types import RoomID, UserID

from bridge.ports import Rooms

DIRECT = "m.direct"


class DirectRooms:
    def __init__(self, rooms: Rooms) -> None:
        self.rooms = rooms
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def remember(
        self, user: UserID, rooms_by_other: Mapping[UserID, Sequence[RoomID]]
    ) -> None:
        """Add rooms to the user's ``m.direct``, each under the other member's user id."""
        async with self._locks[user]:
            content = await self.rooms.get_account_data(user, DIRECT)
            changed = False
            for other, room_ids in rooms_by_other.items():
                known = content.get(other)
                known = list(known) if isinstance(known, list) else []
                new = [r for r in dict.fromkeys(room_ids) if r not in known]
                if new:
                    content[other] = known + new
                    changed = True
            if changed:
                await self.rooms.set_account_data(user, DIRECT, content)

    async def forget(self, user: UserID, room_id: RoomID) -> None:
        """Take a room out of the user's ``m.direct``, wherever it is listed."""
        async with self._locks[user]:
            content = await self.rooms.get_account_data(user, DIRECT)
            changed = False
            for other, rooms in list(content.items()):
                if isinstance(rooms, list) and room_id in rooms:
                    content[other] = [r for r in rooms if r != room_id]
                    if not content[other]:
                        del content[other]
                    changed = True
            if changed:
                await self.rooms.set_account_data(user, DIRECT, content)
