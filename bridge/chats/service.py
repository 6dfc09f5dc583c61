"""Starting, sharing, converting and deleting chats (docs/chats.md).

Every chat is a room the bot creates; members join through the appservice, so nobody has to
accept an invite. The practice's view of who is in a chat (staff records, client records with
sub-records reached through their primary's account) is kept in the bridge database and mirrored
into the room's chat and policy state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from mautrix.types import RoomID, UserID

from bridge.audit import AuditLog
from bridge.clock import now_ms
from bridge.constants import CHAT_STATE, POLICY_STATE
from bridge.directory import Client, DirectoryStore, Practice, Staff
from bridge.directory.service import DirectoryService
from bridge.errors import PracticeError
from bridge.ports import Rooms
from bridge.settings.model import PracticeSettings

from . import layout
from . import refusals as refuse
from .actors import Actor
from .direct import DirectRooms
from .models import Chat, ChatKind
from .naming import RoomNames
from .store import ChatStore

log = logging.getLogger("practice.chats")


@dataclass(eq=False)
class ChatService:
    directory: DirectoryStore
    chats: ChatStore
    rooms: Rooms
    audit: AuditLog
    bot: UserID
    plans: dict[str, dict[str, bool]]

    def __post_init__(self) -> None:
        self.direct = DirectRooms(self.rooms)
        self.names = RoomNames(self.directory, self.chats, self.rooms)
        self._locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._room_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # -- lookups ---------------------------------------------------------------------------

    @staticmethod
    def is_member(actor: Actor, chat: Chat) -> bool:
        return actor.sees(chat.kind, chat.staff_ids, chat.client_ids)

    async def visible_chat(self, actor: Actor, chat_id: str) -> Chat:
        chat = await self.chats.get(chat_id)
        if (
            chat is None
            or chat.practice_id != actor.practice_id
            or not self.is_member(actor, chat)
        ):
            raise refuse.unknown_chat()
        return chat

    async def _client(self, practice_id: str, client_id: str) -> Client:
        client = await self.directory.get_client(practice_id, client_id)
        if client is None or not client.active:
            raise refuse.unknown_client()
        return client

    async def _staff(self, practice_id: str, staff_id: str) -> Staff:
        staff = await self.directory.get_staff(practice_id, staff_id)
        if staff is None or not staff.active:
            raise refuse.unknown_staff()
        return staff

    async def account_of(self, client: Client) -> UserID:
        """The Matrix account that reads and answers for a client record."""
        if client.family_primary_id is None:
            DirectoryService.check_client_access(client)
            return client.user_id
        primary = await self._client(client.practice_id, client.family_primary_id)
        DirectoryService.check_client_access(primary)
        return primary.user_id

    def room_lock(self, room_id: str) -> asyncio.Lock:
        """Held while the bridge changes a chat's room (members, state, deletion)."""
        return self._room_locks[room_id]

    async def accounts(self, chat: Chat) -> list[UserID]:
        """The accounts the records put in the chat's room now: its active staff, and the
        accounts of its clients with access (in a 1:1 chat, only with direct chat access)."""
        staff = await self._staff_users(chat)
        clients = await self._client_users(chat, direct=chat.kind == "direct")
        return staff + [user for user in clients if user not in staff]

    async def _practice(self, practice_id: str) -> Practice:
        practice = await self.directory.get_practice(practice_id)
        assert practice is not None, "an actor always belongs to an existing practice"
        return practice

    # -- direct chats ----------------------------------------------------------------------

    async def start_direct(
        self,
        actor: Actor,
        *,
        client_id: str | None,
        staff_id: str | None,
        chat_id: str | None,
        create_new: bool,
        staff_direct: dict[RoomID, UserID] | None = None,
    ) -> tuple[Chat, bool]:
        """Open the caller's 1:1 chat with a client (staff) or a staff member (client).

        ``staff_direct``: a new chat goes there (room -> client account) instead of into the
        staff member's ``m.direct``, for the caller to write once for many chats."""
        if actor.staff is not None:
            if client_id is None:
                raise refuse.direct_needs_client()
            client = await self._client(actor.practice_id, client_id)
            await self.account_of(client)
            if not client.direct_chat_access:
                raise refuse.direct_chat_disabled()
            owner = actor.staff
        else:
            if staff_id is None:
                raise refuse.direct_needs_staff()
            assert actor.client is not None
            subject_id = client_id or actor.client.client_id
            if subject_id not in actor.client_ids:
                raise refuse.unknown_client()
            client = await self._client(actor.practice_id, subject_id)
            if not actor.client.direct_chat_access or not client.direct_chat_access:
                raise refuse.direct_chat_disabled_for_client()
            owner = await self._staff(actor.practice_id, staff_id)
        async with self._locks[(actor.practice_id, client.client_id)]:
            candidates = await self._direct_candidates(actor, client, owner)
            if chat_id is not None:
                for chat in candidates:
                    if chat.room_id == chat_id:
                        return chat, False
                raise refuse.unknown_chat()
            if candidates and not create_new:
                if len(candidates) == 1:
                    return candidates[0], False
                raise refuse.choose_chat([c.summary() for c in candidates])
            owner_id = owner.staff_id
            chat = Chat(
                RoomID(""),
                actor.practice_id,
                "direct",
                None,
                owner_id,
                staff_ids=[owner_id],
                client_ids=[client.client_id],
            )
            await self._create(chat, actor, staff_direct)
            return chat, True

    async def _direct_candidates(self, actor: Actor, client: Client, staff: Staff) -> list[Chat]:
        """The 1:1 chats of the client with this staff member: their own and shared ones."""
        chats = await self.chats.for_member(actor.practice_id, "client", [client.client_id])
        return [c for c in chats if c.kind == "direct" and staff.staff_id in c.staff_ids]

    # -- group chats -----------------------------------------------------------------------

    async def create_group(
        self, actor: Actor, name: str, client_ids: list[str], staff_ids: list[str]
    ) -> Chat:
        staff = self._require_staff(actor)
        clients = [await self._client(actor.practice_id, cid) for cid in _unique(client_ids)]
        for client in clients:
            await self.account_of(client)
        members = [await self._staff(actor.practice_id, sid) for sid in _unique(staff_ids)]
        staff_set = _unique([staff.staff_id] + [s.staff_id for s in members])
        if len(staff_set) + len(clients) < 2:
            raise refuse.too_few_members()
        _check_size(len(staff_set) + len(clients))
        chat = Chat(
            RoomID(""),
            actor.practice_id,
            "group",
            name,
            staff.staff_id,
            staff_ids=staff_set,
            client_ids=[c.client_id for c in clients],
        )
        await self._create(chat, actor)
        return chat

    async def convert(
        self, actor: Actor, chat_id: str, name: str, client_ids: list[str], staff_ids: list[str]
    ) -> Chat:
        """Turn a 1:1 chat into a group chat in the same room: the history stays."""
        chat, new_clients, new_staff = await self._growing(
            actor, chat_id, "direct", client_ids, staff_ids
        )
        async with self._room_locks[chat.room_id]:
            chat.kind = "group"
            chat.name = name
            old_users = await self._seat(chat, new_clients, new_staff)
            await self.names.apply(chat)
            for user in old_users:
                await self.direct.forget(user, chat.room_id)
        await self.audit.record(
            actor.practice_id,
            actor.user_id,
            "chat.converted",
            chat.room_id,
            {"client_ids": chat.client_ids, "staff_ids": chat.staff_ids},
        )
        return chat

    async def add_members(
        self, actor: Actor, chat_id: str, client_ids: list[str], staff_ids: list[str]
    ) -> Chat:
        """Add people to a group chat; they see its history (history visibility is shared)."""
        chat, new_clients, new_staff = await self._growing(
            actor, chat_id, "group", client_ids, staff_ids
        )
        async with self._room_locks[chat.room_id]:
            await self._seat(chat, new_clients, new_staff)
        await self.audit.record(
            actor.practice_id,
            actor.user_id,
            "chat.members_added",
            chat.room_id,
            {
                "client_ids": [c.client_id for c in new_clients],
                "staff_ids": [s.staff_id for s in new_staff],
            },
        )
        return chat

    async def _seat(
        self, chat: Chat, new_clients: list[Client], new_staff: list[Staff]
    ) -> list[UserID]:
        """Add the newcomers to the chat's record and its room (under the room's lock); returns
        the users it had before."""
        old_users = await self._users(chat)
        chat.staff_ids += [s.staff_id for s in new_staff]
        chat.client_ids += [c.client_id for c in new_clients]
        await self._sync_room(chat, old_users)
        await self.chats.update(chat)
        return old_users

    async def _growing(
        self,
        actor: Actor,
        chat_id: str,
        kind: ChatKind,
        client_ids: list[str],
        staff_ids: list[str],
    ) -> tuple[Chat, list[Client], list[Staff]]:
        """A staff caller's chat of this kind, and the records joining it."""
        self._require_staff(actor)
        chat = await self.visible_chat(actor, chat_id)
        if chat.kind != kind:
            raise refuse.already_group() if chat.kind == "group" else refuse.not_group()
        new_clients, new_staff = await self._newcomers(actor, chat, client_ids, staff_ids)
        return chat, new_clients, new_staff

    async def _newcomers(
        self, actor: Actor, chat: Chat, client_ids: list[str], staff_ids: list[str]
    ) -> tuple[list[Client], list[Staff]]:
        """The records joining a chat (those not in it yet), checked, within the size limit."""
        new_clients = [
            await self._client(actor.practice_id, cid)
            for cid in _unique(client_ids)
            if cid not in chat.client_ids
        ]
        for client in new_clients:
            await self.account_of(client)
        new_staff = [
            await self._staff(actor.practice_id, sid)
            for sid in _unique(staff_ids)
            if sid not in chat.staff_ids
        ]
        _check_size(len(chat.staff_ids) + len(chat.client_ids) + len(new_clients) + len(new_staff))
        return new_clients, new_staff

    # -- sharing ---------------------------------------------------------------------------

    async def share(self, actor: Actor, chat_id: str, staff_id: str) -> Chat:
        """Share a 1:1 chat with a team member when the plan and the practice allow it."""
        staff = self._require_staff(actor)
        chat = await self.visible_chat(actor, chat_id)
        if chat.kind != "direct":
            raise refuse.not_direct()
        if staff.staff_id != chat.owner_staff_id and not actor.is_owner:
            raise refuse.not_owner_to_share()
        practice = await self._practice(actor.practice_id)
        if not self.plans.get(practice.plan, {}).get("direct_chat_sharing", False):
            raise refuse.plan_forbids_sharing(practice.plan)
        if not PracticeSettings.read(practice.settings).allow_direct_chat_sharing:
            raise refuse.sharing_disabled()
        target = await self._staff(actor.practice_id, staff_id)
        async with self._room_locks[chat.room_id]:
            if target.staff_id in chat.staff_ids:
                return chat
            old_users = await self._users(chat)
            chat.staff_ids.append(target.staff_id)
            chat.shared_staff_ids.append(target.staff_id)
            await self._sync_room(chat, old_users)
            await self.chats.update(chat)
            await self.direct.remember(
                target.user_id, {c: [chat.room_id] for c in await self._client_users(chat)}
            )
        await self.audit.record(
            actor.practice_id, actor.user_id, "chat.shared", chat.room_id, {"staff_id": staff_id}
        )
        return chat

    # -- deleting --------------------------------------------------------------------------

    def check_may_delete(self, actor: Actor, chat: Chat) -> None:
        """Only the practice owner or the chat's practitioner may delete a chat."""
        staff = self._require_staff(actor)
        if staff.staff_id != chat.owner_staff_id and not actor.is_owner:
            raise refuse.not_owner_to_delete()

    async def delete(self, actor: Actor, chat_id: str) -> None:
        """Delete a chat for good (Synapse purges the room); owner or the chat's practitioner."""
        self._require_staff(actor)
        chat = await self.visible_chat(actor, chat_id)
        self.check_may_delete(actor, chat)
        async with self._room_locks[chat.room_id]:
            users = await self._users(chat)
            await self.rooms.delete_room(chat.room_id)
            await self.chats.mark_deleted(chat.room_id)
        for user in users:
            try:
                await self.direct.forget(user, chat.room_id)
            except Exception:
                log.warning("Could not clean m.direct of %s", user, exc_info=True)
        await self.audit.record(
            actor.practice_id, actor.user_id, "chat.deleted", chat.room_id, {"kind": chat.kind}
        )

    # -- family moves ----------------------------------------------------------------------

    async def push_policy(self, room_id: RoomID) -> None:
        """Send the chat's policy state as it follows from the practice and its members now."""
        chat = await self.chats.get(room_id)
        if chat is None:
            return
        _, policy, _, _ = await self._states(chat)
        await self.rooms.send_state(chat.room_id, POLICY_STATE, policy)

    async def client_changed(self, old: Client | None, new: Client) -> None:
        """Follow a client record's change: family moves and direct chat access."""
        if old is None:
            return
        if old.direct_chat_access != new.direct_chat_access:
            await self._direct_access_changed(new)
        if old.family_primary_id != new.family_primary_id:
            await self._family_moved(old, new)
        await self.names.client_changed(old, new)

    async def _direct_access_changed(self, client: Client) -> None:
        """Off: the account leaves and forgets the client's 1:1 chats (the practice keeps them).
        On: it joins them again and sees their history."""
        chats = await self.chats.for_member(client.practice_id, "client", [client.client_id])
        try:
            account = await self.account_of(client)
        except PracticeError:
            account = None
        for chat in chats:
            if chat.kind != "direct":
                continue
            async with self._room_locks[chat.room_id]:
                _, policy, _, _ = await self._states(chat)
                await self.rooms.send_state(chat.room_id, POLICY_STATE, policy)
                if account is None:
                    continue
                if client.direct_chat_access:
                    await self.rooms.invite(chat.room_id, account)
                    await self.rooms.join(chat.room_id, account)
                else:
                    await self.rooms.leave_and_forget(chat.room_id, account)

    async def _family_moved(self, old: Client, new: Client) -> None:
        """A sub-record moved to another primary (or got its own account): move its chats."""
        chats = await self.chats.for_member(new.practice_id, "client", [new.client_id])
        for chat in chats:
            async with self._room_locks[chat.room_id]:
                old_users = await self._users(chat, old_records={new.client_id: old})
                await self._sync_room(chat, old_users)
                await self.chats.update(chat)
            await self.audit.record(
                new.practice_id,
                "bridge",
                "chat.family_moved",
                chat.room_id,
                {"client_id": new.client_id, "family_primary_id": new.family_primary_id},
            )

    # -- rooms -----------------------------------------------------------------------------

    def _require_staff(self, actor: Actor) -> Staff:
        if actor.staff is None:
            raise refuse.staff_only()
        return actor.staff

    async def _staff_users(self, chat: Chat) -> list[UserID]:
        users = []
        for sid in chat.staff_ids:
            staff = await self.directory.get_staff(chat.practice_id, sid)
            if staff is not None and staff.active:
                users.append(staff.user_id)
        return users

    async def _client_users(
        self, chat: Chat, old_records: dict[str, Client] | None = None, *, direct: bool = False
    ) -> list[UserID]:
        """The accounts of the chat's active clients (with ``direct``, only of those with direct
        chat access)."""
        users: list[UserID] = []
        for cid in chat.client_ids:
            client = (old_records or {}).get(cid) or await self.directory.get_client(
                chat.practice_id, cid
            )
            if client is None or not client.active:
                continue
            if direct and not client.direct_chat_access:
                continue
            try:
                user = await self.account_of(client)
            except PracticeError:
                continue
            if user not in users:
                users.append(user)
        return users

    async def _users(
        self, chat: Chat, old_records: dict[str, Client] | None = None
    ) -> list[UserID]:
        return await self._staff_users(chat) + await self._client_users(chat, old_records)

    async def _states(self, chat: Chat) -> tuple[dict, dict, list[UserID], list[UserID]]:
        practice = await self._practice(chat.practice_id)
        staff_users = await self._staff_users(chat)
        client_users = await self._client_users(chat)
        subjects = [
            c
            for cid in chat.client_ids
            if (c := await self.directory.get_client(chat.practice_id, cid)) is not None
        ]
        may_send = True
        if chat.kind == "direct":
            may_send = all(c.direct_chat_access for c in subjects)
        chat_content = layout.chat_state(chat, subjects)
        policy = layout.policy_state(chat, practice, client_users, may_send)
        return chat_content, policy, staff_users, client_users

    async def _create(
        self, chat: Chat, actor: Actor, staff_direct: dict[RoomID, UserID] | None = None
    ) -> None:
        chat_content, policy, staff_users, client_users = await self._states(chat)
        users = staff_users + client_users
        name = await self.names.name_of(chat)
        room_id = await self.rooms.create_room(
            name=name,
            room_version=layout.ROOM_VERSION,
            is_direct=chat.kind == "direct",
            initial_state=layout.initial_state(chat_content, policy),
            power_levels=layout.power_levels(staff_users),
            invitees=users,
        )
        # Synapse orders the joins of one room itself; asking at once saves the round trips.
        await asyncio.gather(*(self.rooms.join(room_id, user) for user in users))
        chat.room_id = room_id
        chat.created_at = chat.last_message_ts = now_ms()
        await self.chats.insert(chat)
        await self.names.created(room_id, name)
        if chat.kind == "direct":
            await self._remember_new_direct(room_id, staff_users, client_users, staff_direct)
        log.info("Created %s chat %s in %s", chat.kind, room_id, chat.practice_id)
        await self.audit.record(
            chat.practice_id,
            actor.user_id,
            "chat.created",
            room_id,
            {"kind": chat.kind, "client_ids": chat.client_ids, "staff_ids": chat.staff_ids},
        )

    async def _sync_room(self, chat: Chat, old_users: list[UserID]) -> None:
        """Bring the room's members, power levels, chat and policy state in line with ``chat``."""
        chat_content, policy, staff_users, client_users = await self._states(chat)
        users = staff_users + client_users
        for user in users:
            if user not in old_users:
                await self.rooms.invite(chat.room_id, user)
                await self.rooms.join(chat.room_id, user)
        for user in old_users:
            if user not in users:
                await self.rooms.kick(chat.room_id, user, "No longer part of this chat")
        await self.rooms.send_state(
            chat.room_id, "m.room.power_levels", layout.power_levels(staff_users)
        )
        await self.rooms.send_state(chat.room_id, CHAT_STATE, chat_content)
        await self.rooms.send_state(chat.room_id, POLICY_STATE, policy)

    async def _remember_new_direct(
        self,
        room_id: RoomID,
        staff_users: list[UserID],
        client_users: list[UserID],
        staff_direct: dict[RoomID, UserID] | None,
    ) -> None:
        """A new 1:1 chat in every member's ``m.direct``, all of them at once."""
        writes = [
            self.direct.remember(c, {s: [room_id] for s in staff_users}) for c in client_users
        ]
        if staff_direct is None:
            by_client = {c: [room_id] for c in client_users}
            writes += [self.direct.remember(s, by_client) for s in staff_users]
        elif client_users:
            staff_direct[room_id] = client_users[0]
        await asyncio.gather(*writes)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _check_size(count: int) -> None:
    if count > refuse.MAX_MEMBERS:
        raise refuse.too_many_members()


__all__ = ["ChatKind", "ChatService"]
