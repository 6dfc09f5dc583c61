"""The chat list and the contacts, as the caller may see them (docs/chats.md#the-chat-list)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from mautrix.types import RoomID

from bridge.directory import Client, DirectoryStore, Staff
from bridge.metrics import Metrics

from .actors import Actor
from .kept import KeptList, KeptLists
from .models import Chat, UserChatState
from .pages import Cursor, Passes, SortKey
from .refusals import bad_cursor
from .store import ChatStore
from .userstate import UserStateMirror, hidden, unread

log = logging.getLogger("practice.chatlist")
ChatFilter = Literal["all", "unread", "pinned"]
FILTERS: tuple[ChatFilter, ...] = ("all", "unread", "pinned")
_FILTER_NAMED: dict[str, ChatFilter] = {name: name for name in FILTERS}
CHATS_PAGE = 50  # chats on a page unless the caller asks for another number
CHATS_PAGE_MAX = 1000
CONTACTS_KEPT = 32  # people whose contacts a process keeps made (the most recent)
# (user, {chat: read mark}) -> {chat: messages from others after the mark}
UnreadCounter = Callable[[str, dict[str, int]], Awaitable[dict[str, int]]]
Reads = dict[tuple[str, str], int]  # {(room_id, user_id): when the user last read it}


@dataclass
class _ContactParts:
    """What a person's contacts make of the practice's chats and clients, as of ``versions``
    (the practice's clients_version and chats_version). Shared between answers: not changed."""

    versions: tuple[int, int] | None
    groups: list[dict[str, Any]]
    clients: list[dict[str, Any]]
    by_staff: dict[str, list[dict[str, Any]]]  # their chats, by staff record

    @property
    def staff_in_chats(self) -> set[str]:
        return set(self.by_staff)


@dataclass
class ChatPage:
    chats: list[dict[str, Any]]
    next_batch: str | None  # where the next page starts; None on the last page


@dataclass(eq=False)
class ChatDirectory:
    directory: DirectoryStore
    chats: ChatStore
    mirror: UserStateMirror
    bot: str
    unread_counts: UnreadCounter | None = field(default=None, kw_only=True)
    metrics: Metrics | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        self._background: set[asyncio.Task[None]] = set()
        self._unhiding: set[tuple[str, str]] = set()  # (user, chat) being unhidden now
        self.passes = Passes()
        self.kept = KeptLists(self.chats)
        self._contacts: OrderedDict[str, _ContactParts] = OrderedDict()

    async def chats_of(self, actor: Actor) -> list[Chat]:
        chats = await self.chats.for_member(actor.practice_id, actor.member_kind, actor.member_ids)
        return [c for c in chats if actor.sees(c.kind, c.staff_ids, c.client_ids)]

    async def list_chats(
        self,
        actor: Actor,
        chat_filter: ChatFilter,
        include_hidden: bool,
        limit: int | None = None,
        start: str | None = None,
    ) -> ChatPage:
        """A page of the caller's chats: ``limit`` of them (all when None), from the start or
        after the page whose ``next_batch`` is ``start`` (bridge/chats/pages.py)."""
        view = f"{chat_filter}:{int(include_hidden)}"
        cursor = Cursor.decode(start) if start is not None else None
        if cursor is not None and cursor.view != view:
            raise bad_cursor()
        found = cursor and self.passes.get(cursor.pass_id, actor.user_id, view)
        kept = await self.kept.get(actor)
        if cursor is not None and found:
            # A pass goes on with the order its first page made, each chat as it is now.
            pass_id, order, offset = cursor.pass_id, found.order, cursor.offset
            end = min(len(order), offset + (limit or len(order)))
            items = await self._items(actor, order, offset, end, view, kept)
        else:
            after = cursor.last if cursor is not None else None
            # Followed: the mirror is as Matrix has it (bridge/chats/following.py).
            followed = self.mirror.live(actor.user_id)
            if self.metrics is not None:
                self.metrics.chat_lists.labels("followed" if followed else "synced").inc()
            first = self._first if followed else self._caught_up
            order, end, items = await first(actor, kept, after, limit, view)
            pass_id, offset = "", 0
        next_batch = None
        if end < len(order):
            if not pass_id:
                pass_id = self.passes.add(actor.user_id, view, order)
            next_batch = Cursor(pass_id, end, order[end - 1], view).encode()
        elif pass_id:
            self.passes.drop(pass_id)  # its last page
        return ChatPage(items, next_batch)

    async def _caught_up(
        self, actor: Actor, kept: KeptList, after: SortKey | None, limit: int | None, view: str
    ) -> tuple[list[SortKey], int, list[dict[str, Any]]]:
        """A new pass of someone not followed: it waits for their sync (account data and
        receipts). While Synapse answers, the page is made from the state mirrored so far; it
        stands if the sync changed nothing, which is the rule."""
        fresh = asyncio.ensure_future(self.mirror.current(actor.user_id))
        try:
            order, end, items = await self._first(actor, kept, after, limit, view)
            states = await fresh
        finally:
            fresh.cancel()  # (done by now, unless something above failed)
        synced = {room: states[room] for room in kept.keys if room in states}
        if synced != kept.states:
            kept = replace(kept, states=synced, orders={}, unhide={})
            order, end, items = await self._first(actor, kept, after, limit, view)
        return order, end, items

    async def _first(
        self, actor: Actor, kept: KeptList, after: SortKey | None, limit: int | None, view: str
    ) -> tuple[list[SortKey], int, list[dict[str, Any]]]:
        """A new pass's order and its first page (after ``after``: a cursor whose pass is
        gone goes on after the chat it last listed)."""
        order = self._order(actor, kept, view)
        for room_id, ts in kept.unhide.items():  # (again each list, until it is done)
            self._unhide_later(actor, room_id, ts)
        if after is not None:
            order = [key for key in order if key > after]
        end = min(len(order), limit or len(order))
        return order, end, await self._items(actor, order, 0, end, view, kept)

    def _order(self, actor: Actor, kept: KeptList, view: str) -> list[SortKey]:
        """Every chat of the caller that fits the view, sorted: pinned first, then the latest
        message first (kept with the list until it changes; not to be changed)."""
        order = kept.orders.get(view)
        if order is not None:
            return order
        chat_filter, include_hidden = _view(view)
        user_id, bot, none, states = actor.user_id, self.bot, UserChatState(), kept.states
        order = []
        for room_id, (kind, ts, sender, mine) in kept.keys.items():
            if not actor.sees(kind, mine, mine):
                continue
            state = states.get(room_id) or none
            is_hidden = hidden(state, ts)
            if state.hidden_at is not None and not is_hidden:
                kept.unhide[room_id] = ts
            if is_hidden and not include_hidden:
                continue
            if chat_filter == "unread" and not unread(state, ts, sender, user_id, bot):
                continue
            if chat_filter == "pinned" and not state.favourite:
                continue
            order.append((not state.favourite, -ts, room_id))
        order.sort()
        kept.orders[view] = order
        return order

    async def _items(
        self, actor: Actor, order: list[SortKey], offset: int, end: int, view: str, kept: KeptList
    ) -> list[dict[str, Any]]:
        """The chats ``offset:end`` of the pass as they are now, in the pass's order; a chat
        deleted since, or that no longer fits the view, is left out."""
        chat_filter, include_hidden = _view(view)
        keys, states, details = kept.keys, kept.states, kept.details
        page = [key[2] for key in order[offset:end] if key[2] in keys]
        if not page:
            return []
        missing = [room for room in page if room not in details]
        chats, staff = await asyncio.gather(
            self.chats.get_many(missing), self.directory.list_staff(actor.practice_id)
        )
        details.update(chats)
        listed = [details[room] for room in page if room in details]
        ids = sorted({cid for chat in listed for cid in chat.client_ids})
        clients = await self.directory.get_clients(actor.practice_id, ids)
        primaries = {c.family_primary_id for c in clients.values() if c.family_primary_id}
        missing = sorted(p for p in primaries if p not in clients)
        if missing:
            clients.update(await self.directory.get_clients(actor.practice_id, missing))
        reads = None
        if actor.is_staff:  # when each client account last read each chat of the page
            accounts = {
                clients[c.family_primary_id or c.client_id].user_id
                for c in clients.values()
                if (c.family_primary_id or c.client_id) in clients
            }
            reads = await self.chats.read_marks_of(sorted(accounts))
        people = ({s.staff_id: s for s in staff}, clients)
        counts = await self._unread_counts(actor, [chat.room_id for chat in listed], kept)
        user_id, bot, none = actor.user_id, self.bot, UserChatState()
        items: list[dict[str, Any]] = []
        for chat in listed:
            if not actor.sees(chat.kind, chat.staff_ids, chat.client_ids):
                continue
            _, ts, sender, _ = keys[chat.room_id]
            state = states.get(chat.room_id) or none
            is_hidden = hidden(state, ts)
            is_unread = unread(state, ts, sender, user_id, bot)
            if (is_hidden and not include_hidden) or (chat_filter == "unread" and not is_unread):
                continue
            if chat_filter == "pinned" and not state.favourite:
                continue
            items.append(
                {
                    "chat_id": chat.room_id,
                    "kind": chat.kind,
                    "name": chat.name or self._direct_name(chat, actor, people),
                    "pinned": state.favourite,
                    "unread": is_unread,
                    "hidden": is_hidden,
                    "last_message_ts": ts,
                    "owner_staff_id": chat.owner_staff_id,
                    "shared_with_staff_ids": chat.shared_staff_ids,
                    "members": self._members(chat, people, reads),
                    "subject_client_ids": chat.client_ids,
                    "unread_count": counts.get(chat.room_id, 0),
                }
            )
        return items

    async def _unread_counts(
        self, actor: Actor, rooms: list[str], kept: KeptList
    ) -> dict[str, int]:
        """Messages from others since the user's read mark, for a badge; asked only for the
        chats with something newer than the mark, so a long page stays one quick query."""
        if self.unread_counts is None:
            return {}
        marks: dict[str, int] = {}
        for room_id in rooms:
            read_ts = (kept.states.get(room_id) or UserChatState()).read_ts
            if kept.keys[room_id][1] > read_ts:
                marks[room_id] = read_ts
        return await self.unread_counts(actor.user_id, marks) if marks else {}

    def _unhide_later(self, actor: Actor, room_id: str, ts: int) -> None:
        """A new message (at ``ts``) arrived after the user hid the chat: drop the hidden tags,
        unless the user hid it again since. One at a time per person and chat."""
        key = (actor.user_id, room_id)
        if key in self._unhiding:
            return
        self._unhiding.add(key)

        async def unhide() -> None:
            try:
                await self.mirror.unhide_before(actor.user_id, RoomID(room_id), ts)
            except Exception:
                log.warning("Could not unhide %s for %s", room_id, actor.user_id)
            finally:
                self._unhiding.discard(key)

        task = asyncio.create_task(unhide())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    def _direct_name(
        chat: Chat, actor: Actor, people: tuple[dict[str, Staff], dict[str, Client]]
    ) -> str:
        staff, clients = people
        if actor.is_staff:
            names = [clients[c].name for c in chat.client_ids if c in clients]
        else:
            names = [staff[s].name for s in chat.staff_ids if s in staff]
        return ", ".join(names)

    @staticmethod
    def _members(
        chat: Chat,
        people: tuple[dict[str, Staff], dict[str, Client]],
        reads: Reads | None,
    ) -> list[dict[str, Any]]:
        """The chat's people; for staff callers, when each client account last read it."""
        staff, clients = people
        members: list[dict[str, Any]] = []
        for sid in chat.staff_ids:
            s = staff.get(sid)
            if s is not None:
                members.append(
                    {
                        "kind": "staff",
                        "staff_id": sid,
                        "user_id": s.user_id,
                        "name": s.name,
                        "role": s.role,
                        "shared": sid in chat.shared_staff_ids,
                    }
                )
        for cid in chat.client_ids:
            c = clients.get(cid)
            if c is None:
                continue
            primary = c.family_primary_id
            member: dict[str, Any] = {
                "kind": "client",
                "client_id": cid,
                "name": c.name,
                "user_id": None if primary is not None else c.user_id,
                "family_primary_id": primary,
            }
            if reads is not None:
                account = clients.get(primary or cid)
                if account is not None:
                    # The "read" marker: when the client (or their primary) last read the chat.
                    member["last_read_ts"] = reads.get((chat.room_id, account.user_id))
            members.append(member)
        return members

    # -- contacts --------------------------------------------------------------------------

    async def contacts(self, actor: Actor) -> dict[str, Any]:
        """The caller's team members, groups and clients, each with the caller's chats with
        them. What comes of the practice's chats and clients is kept per person and made again
        only when a client or a chat of the practice was written since (by any process: the
        practice's versions move on in the same transaction); the team is read each time."""
        versions = await self.chats.versions(actor.practice_id)
        parts = self._contacts.get(actor.user_id)
        if parts is None or versions is None or parts.versions != versions:
            parts = await self._contact_parts(actor, versions)
        if versions is not None:
            self._contacts[actor.user_id] = parts
            self._contacts.move_to_end(actor.user_id)
            while len(self._contacts) > CONTACTS_KEPT:
                self._contacts.popitem(last=False)
        staff = [s for s in await self.directory.list_staff(actor.practice_id) if s.active]
        if actor.staff is not None:
            me = actor.staff.staff_id
            team = [s for s in staff if s.staff_id != me]
        else:
            assert actor.client is not None
            if not actor.client.direct_chat_access:
                staff = [s for s in staff if s.staff_id in parts.staff_in_chats]
            team = staff
        return {
            "team_members": [self._staff_contact(s, parts.by_staff) for s in team],
            "groups": parts.groups,
            "clients": parts.clients,
        }

    async def _contact_parts(
        self, actor: Actor, versions: tuple[int, int] | None
    ) -> _ContactParts:
        chats = await self.chats_of(actor)
        refs: dict[str, dict[str, Any]] = {c.room_id: _ref(c) for c in chats}
        groups = [refs[c.room_id] for c in chats if c.kind == "group"]
        if actor.staff is not None:
            clients = [c for c in await self.directory.list_clients(actor.practice_id) if c.active]
        else:
            family = await self.directory.get_clients(actor.practice_id, actor.client_ids)
            clients = [family[cid] for cid in actor.client_ids if cid in family]
        by_staff: dict[str, list[dict[str, Any]]] = defaultdict(list)
        by_client: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for chat in chats:
            for sid in chat.staff_ids:
                by_staff[sid].append(refs[chat.room_id])
            for cid in chat.client_ids:
                by_client[cid].append(refs[chat.room_id])
        return _ContactParts(
            versions, groups, self._client_contacts(clients, by_client), dict(by_staff)
        )

    @staticmethod
    def _staff_contact(staff: Staff, chats_of: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return {
            "staff_id": staff.staff_id,
            "user_id": staff.user_id,
            "name": staff.name,
            "role": staff.role,
            "chats": list(chats_of.get(staff.staff_id, ())),
        }

    @staticmethod
    def _client_contacts(
        clients: list[Client], chats_of: dict[str, list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Primaries with their family members, then family members whose primary is not
        listed; each with its chats in list order. One pass over each: a practice of ten
        thousand clients is as quick to list as its JSON is to write."""

        def entry(c: Client, sub: bool) -> dict[str, Any]:
            return {
                "client_id": c.client_id,
                "user_id": None if sub else c.user_id,
                "name": c.name,
                "can_message": sub or (c.active and c.activated and c.portal_access),
                "direct_chat_access": c.direct_chat_access,
                "chats": list(chats_of.get(c.client_id, ())),
            }

        family: dict[str, list[dict[str, Any]]] = defaultdict(list)
        result: list[dict[str, Any]] = []
        orphans: list[Client] = []
        for c in clients:
            primary = c.family_primary_id
            if primary is None:
                item = entry(c, False)
                item["family_members"] = family[c.client_id]
                result.append(item)
            else:
                family[primary].append(entry(c, True))
                orphans.append(c)
        # Family members whose primary is not listed (a client's own family view).
        known = {item["client_id"] for item in result}
        for c in orphans:
            if c.family_primary_id not in known:
                result.append(entry(c, True) | {"family_members": []})
        return result


def _view(view: str) -> tuple[ChatFilter, bool]:
    chat_filter, hidden_too = view.split(":")
    return _FILTER_NAMED[chat_filter], hidden_too == "1"


def _ref(chat: Chat) -> dict[str, Any]:
    return {"chat_id": chat.room_id, "kind": chat.kind, "name": chat.name}
