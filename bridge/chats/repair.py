"""Membership is the bridge's: a chat's room holds the members its records say, and nobody leaves
on their own (docs/chats.md#membership).

The Synapse module refuses a member's own leave, but a membership can still change behind the
bridge's back: while the module was not loaded, through Synapse's admin API, by an admin acting
as the bot. The bridge then puts the room back in line with its records, at start (every chat)
and whenever it sees a portal user's membership end (a ``leave`` or ``ban`` event through the
pipeline): each account the records put in the chat and that is not joined is invited again
(unbanned first) and joined through the appservice. Every repair is logged (room and user ids,
never names) and audited. Names follow the same way: a member whose name or picture in the
room is not the directory's (a join over a join with another profile is noted like a leave)
gets the directory's name, in their profile and in that room.

The bridge's own removals are never undone, because the records say them first: a family member
moved to another primary, a client whose direct chat access was turned off, a deleted chat, a
removed staff member or a client without portal access is not in :meth:`ChatService.accounts`
by the time the room shows the change (the repair waits for the room's lock, which those changes
hold while they change the room).

The pipeline handler only notes the room; the repair runs after the commit, in a worker. A room
noted just before a crash is covered by the sweep at the next start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Connection

from bridge.audit import AuditLog
from bridge.background import BackgroundLoop
from bridge.events import QueuedEvent
from bridge.identity import IdentityMapper
from bridge.ports import Homeserver, MemberProfile, Rooms

from .service import ChatService
from .store import ChatStore

log = logging.getLogger("practice.membership")

_GONE = frozenset({"leave", "ban"})


def _profile_changed(payload: dict[str, Any]) -> bool:
    """A join over a join with another name or picture (Synapse's ``prev_content``)."""
    unsigned = payload.get("unsigned")
    prev = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
    content = payload.get("content")
    if not isinstance(prev, dict) or not isinstance(content, dict):
        return False
    if prev.get("membership") != "join":
        return False
    return any(prev.get(key) != content.get(key) for key in ("displayname", "avatar_url"))


@dataclass(eq=False)
class MembershipRepair:
    service: ChatService
    store: ChatStore
    rooms: Rooms
    homeserver: Homeserver
    audit: AuditLog
    mapper: IdentityMapper

    def __post_init__(self) -> None:
        self._noted: set[str] = set()
        self._sweep_pending = False
        self._loop = BackgroundLoop("membership-repair", self._work, log)

    # -- the pipeline handler --------------------------------------------------------------

    async def __call__(self, conn: Connection, ev: QueuedEvent) -> None:
        payload = ev.payload
        if ev.ephemeral or not ev.room_id or payload.get("type") != "m.room.member":
            return
        content = payload.get("content")
        membership = content.get("membership") if isinstance(content, dict) else None
        target = payload.get("state_key")
        if not isinstance(target, str) or self.mapper.parse(target) is None:
            return
        if membership in _GONE or (membership == "join" and _profile_changed(payload)):
            self._noted.add(ev.room_id)
            self._loop.notify()

    # -- the worker ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker; its first run repairs every chat (the sweep at start)."""
        self._sweep_pending = True
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _work(self) -> None:
        if self._sweep_pending:
            repaired = await self.repair_all()
            self._sweep_pending = False
            log.info("Checked the members of every chat at start: %d repaired", repaired)
        while self._noted:
            room_id = self._noted.pop()
            try:
                await self.repair_room(RoomID(room_id))
            except Exception as e:
                # Not retried in a loop: the sweep at the next start checks the room again.
                log.warning("Could not repair the members of %s (%s)", room_id, e)

    async def repair_all(self) -> int:
        """Repair every chat's room; return how many accounts were put back."""
        repaired = 0
        for room_id in await self.store.live_room_ids():
            try:
                repaired += len(await self.repair_room(RoomID(room_id)))
            except Exception as e:
                log.warning("Could not check the members of %s (%s)", room_id, e)
        return repaired

    async def repair_room(self, room_id: RoomID) -> list[UserID]:
        """Invite and join every account the records put in the chat and the room lacks, and
        give every member there the directory's name (and no picture); return who was put
        back."""
        async with self.service.room_lock(room_id):
            chat = await self.store.get(room_id)
            if chat is None:
                return []
            wanted = await self.service.accounts(chat)
            joined = await self.rooms.joined_members(room_id)
            missing = [user for user in wanted if user not in joined]
            for user in missing:
                member = await self.rooms.get_state(room_id, "m.room.member", user)
                was = str((member or {}).get("membership", "none"))
                if was == "ban":
                    await self.rooms.unban(room_id, user)
                if was != "invite":
                    await self.rooms.invite(room_id, user)
                await self.rooms.join(room_id, user)
                log.warning(
                    "Repaired the members of %s: %s was %s, joined again", room_id, user, was
                )
                await self.audit.record(
                    chat.practice_id,
                    "bridge",
                    "chat.member_restored",
                    room_id,
                    {"user_id": user, "was": was},
                )
            for user, profile in joined.items():
                await self._repair_name(room_id, user, profile)
            return missing

    async def _repair_name(self, room_id: RoomID, user: UserID, profile: MemberProfile) -> None:
        name = await self._directory_name(user)
        if not name or (profile.displayname == name and not profile.avatar_url):
            return
        # The profile first (Synapse carries it into the user's other chats), then this chat.
        await self.homeserver.ensure_user(user, name)
        await self.rooms.set_member_name(room_id, user, name)
        log.warning("Repaired the name of %s in %s: the directory's again", user, room_id)

    async def _directory_name(self, user: UserID) -> str | None:
        """The name the directory gives the account, None for anyone else."""
        who = self.mapper.parse(user)
        if who is None:
            return None
        store = self.service.directory
        if who.kind == "staff":
            staff = await store.get_staff(who.practice_id, who.local_id)
            return staff.name if staff is not None else None
        client = await store.get_client(who.practice_id, who.local_id)
        return client.name if client is not None else None
