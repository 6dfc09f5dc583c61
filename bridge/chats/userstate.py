"""Per-user chat state: pinned, marked unread, hidden, read up to when.

Matrix account data is the truth (docs/chats.md#pin-unread-hide): the API writes it as the user,
and any Matrix client may change it. The bridge mirrors it in its database:

- what the bridge writes itself (pin, hide, mark unread through the API) at once, and the reads
  the event pipeline sees (public receipts, the user's own messages);
- the first time it needs a user's state for their chat list, a snapshot that looks at no more
  rooms than needed: the tagged rooms (simplified sliding sync filtered by tag) and the room
  account data (one admin read), taken after a sync position, so nothing changed afterwards is
  missed. Receipts sent before it (private ones reach the bridge no other way) come from the
  user's full first sync, run once in the background; until it is done, such a chat may show
  unread;
- from then on, while they use the list, a long-polling /sync as the user (account data and
  receipts only, no timelines; bridge/chats/following.py) that Synapse answers as soon as
  something changes in any Matrix client, so their lists are made from the mirror alone; a list
  of someone not followed (any more) first catches up with one incremental /sync.

What standard Matrix apps show: pinned is the favourite tag and unread the marked-unread flag,
as they are; hidden is written as the low priority tag too (``m.lowpriority``, Element's "Low
priority" section) beside the bridge's own hidden tag, which says when it was hidden and that
the two go together, so that taking a chat out of low priority in an app shows it in the portal
again, and low priority set in an app hides it there.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID, UserID

from bridge.clock import now_ms
from bridge.constants import (
    FAVOURITE_TAG,
    HIDDEN_TAG,
    LOW_PRIORITY_TAG,
    MARKED_UNREAD,
    MARKED_UNREAD_UNSTABLE,
)
from bridge.db import transaction
from bridge.ports import Rooms, UserStateSource

from .facts import Read
from .following import Following
from .models import Chat, UserChatState
from .store import ChatStore

log = logging.getLogger("practice.userstate")
# In the hidden tag's content: written together with the low priority tag, so the two go
# together (a hidden tag without it, from before or from another client, stands alone).
_PAIRED = "low_priority"

SYNC_FILTER: dict[str, Any] = {
    "presence": {"types": []},
    "account_data": {"types": []},
    "room": {
        "timeline": {"limit": 0},
        "state": {"types": []},
        "ephemeral": {"types": ["m.receipt"]},
        "account_data": {"types": ["m.tag", MARKED_UNREAD, MARKED_UNREAD_UNSTABLE]},
    },
}
# A sync position and nothing else: no room is looked at.
POSITION_FILTER: dict[str, Any] = {
    "presence": {"types": []},
    "account_data": {"types": []},
    "room": {"rooms": []},
}
# The user's read receipts in every room, nothing else.
RECEIPTS_FILTER: dict[str, Any] = {
    **SYNC_FILTER,
    "room": {**SYNC_FILTER["room"], "account_data": {"types": []}},
}
UNREAD_TYPES = (MARKED_UNREAD, MARKED_UNREAD_UNSTABLE)


@dataclass(eq=False)
class UserStateMirror:
    chats: ChatStore
    rooms: Rooms
    source: UserStateSource

    def __post_init__(self) -> None:
        # Per user: a lock over each read-change-write of their mirror, and how many changes
        # the API made, so that a sync answer computed before such a change is not applied
        # over it (it is asked again from the same position instead, and comes back current).
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._writes: defaultdict[str, int] = defaultdict(int)
        self._background: set[asyncio.Task[None]] = set()
        # Hiding and the unhiding a new message causes never interleave for one chat.
        self._hide_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self.following = Following(self._poll)
        self._asked_again: defaultdict[str, int] = defaultdict(int)

    def live(self, user_id: UserID) -> bool:
        """True if the user is followed: the mirror is as Matrix has it (a moment ago)."""
        return self.following.live(user_id)

    async def current(self, user_id: UserID) -> dict[str, UserChatState]:
        """Every chat's state for the user, as Matrix has it now (for their chat list); the
        user is followed from now on while they use the list."""
        if await self.chats.sync_token(user_id) is not None:
            states = await self.refresh(user_id)
        else:
            states = await self._snapshot(user_id)
            self._later(self._backfill_reads(user_id))
        self.following.follow(user_id)
        return states

    async def refresh(self, user_id: UserID) -> dict[str, UserChatState]:
        """Catch up with the user's account data and receipts; return every chat's state."""
        for _ in range(3):
            states = await self._catch_up(user_id, 0)
            if states is not None:
                return states
        return await self.chats.user_states(user_id)

    async def _poll(self, user_id: UserID, wait_ms: int) -> bool:
        """Wait (up to ``wait_ms``) for a change to the user's state and mirror it; False if
        the answer was not applied (changed meanwhile: to be asked again)."""
        if await self.chats.sync_token(user_id) is None:
            raise LookupError("no sync position to follow from")
        return await self._catch_up(user_id, wait_ms) is not None

    async def _catch_up(self, user_id: UserID, wait_ms: int) -> dict[str, UserChatState] | None:
        """One incremental sync from the mirrored position (waiting up to ``wait_ms`` for a
        change), mirrored; None if its answer was not applied. Asked again from the same
        position, a request waits a millisecond more each time: the same request would get
        back the answer Synapse keeps for two minutes, made before the change."""
        since = await self.chats.sync_token(user_id)
        writes = self._writes[user_id]
        again = self._asked_again[user_id]
        resp = await self.source.sync(user_id, since, SYNC_FILTER, wait_ms + again)
        states = await self._absorb(user_id, since, resp, writes)
        self._asked_again[user_id] = 0 if states is not None else again + 1
        return states

    async def _absorb(
        self, user_id: UserID, since: str | None, resp: dict[str, Any], writes: int | None
    ) -> dict[str, UserChatState] | None:
        """Mirror a sync answer; None (nothing done) if the API changed the user's state
        since the answer was asked for, or another answer from the same position was
        mirrored first (this one may be older)."""
        async with self._locks[user_id]:
            if writes is not None and writes != self._writes[user_id]:
                return None
            if since != await self.chats.sync_token(user_id):
                return None
            return await self._save(user_id, since, resp)

    async def _save(
        self, user_id: UserID, since: str | None, resp: dict[str, Any]
    ) -> dict[str, UserChatState]:
        states = await self.chats.user_states(user_id)
        changed: dict[str, UserChatState] = {}
        if since is None:
            # A first sync lists only what is set: anything else mirrored before is gone.
            changed.update(_reset(states))
        for room_id, room in (resp.get("rooms", {}).get("join") or {}).items():
            state = states.get(room_id) or UserChatState()
            if _apply(state, room, user_id):
                changed[room_id] = states[room_id] = state
        next_batch = resp.get("next_batch")
        if changed or next_batch != since:
            await self.chats.save_user_states(user_id, changed, next_batch)
        return states

    async def _backfill_reads(self, user_id: UserID) -> None:
        """After a snapshot: the user's read receipts from before it (private ones reach the
        bridge no other way), from the full first sync, in the background. Read marks only
        move forward, so this never undoes a newer one."""
        resp = await self.source.sync(user_id, None, RECEIPTS_FILTER)
        reads = []
        for room_id, room in (resp.get("rooms", {}).get("join") or {}).items():
            state = UserChatState()
            if _apply(state, room, user_id) and state.read_ts:
                reads.append(Read(user_id, room_id, state.read_ts))
        async with transaction(self.chats.db) as conn:
            await self.chats.record_reads(conn, reads)

    def _later(self, job: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await job
            except Exception as e:
                log.warning("Could not read earlier receipts (%s)", type(e).__name__)

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _snapshot(self, user_id: UserID) -> dict[str, UserChatState]:
        """A user the bridge has never read: their state without a sync over every room."""
        writes = self._writes[user_id]
        position = await self.source.sync(user_id, None, POSITION_FILTER)
        try:
            tagged = await self.source.tagged_rooms(
                user_id, [FAVOURITE_TAG, HIDDEN_TAG, LOW_PRIORITY_TAG]
            )
            data = await self.source.room_account_data(user_id)
        except Exception as e:
            # An older Synapse, no admin rights, too many tags: the full first sync, as before.
            log.warning("Reading %s's chat state in one sync (%s)", user_id, type(e).__name__)
            first = await self.source.sync(user_id, None, SYNC_FILTER)
            states = await self._absorb(user_id, None, first, None)
            return states if states is not None else await self.refresh(user_id)
        rooms: dict[str, dict[str, Any]] = {}
        for room_id, tags in tagged.items():
            rooms[room_id] = {"account_data": {"events": [_event("m.tag", {"tags": tags})]}}
        for room_id, by_type in data.items():
            events = [_event(t, c) for t, c in by_type.items() if t in UNREAD_TYPES]
            if events:
                room = rooms.setdefault(room_id, {"account_data": {"events": []}})
                room["account_data"]["events"] += events
        resp = {"rooms": {"join": rooms}, "next_batch": position.get("next_batch")}
        states = await self._absorb(user_id, None, resp, writes)
        if states is not None:
            return states
        # Changed meanwhile: through the API (take it again), or mirrored by another list.
        if await self.chats.sync_token(user_id) is None:
            return await self._snapshot(user_id)
        return await self.refresh(user_id)

    async def stop(self) -> None:
        await self.following.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.source.close()

    async def set_pinned(self, user_id: UserID, room_id: RoomID, pinned: bool) -> None:
        if pinned:
            await self.rooms.set_tag(user_id, room_id, FAVOURITE_TAG, {"order": 0.5})
        else:
            await self.rooms.remove_tag(user_id, room_id, FAVOURITE_TAG)
        await self._update(user_id, room_id, favourite=pinned)

    async def set_hidden(self, user_id: UserID, room_id: RoomID, hidden: bool) -> None:
        async with self._hide_locks[user_id, room_id]:
            await self._set_hidden(user_id, room_id, hidden)

    async def unhide_before(self, user_id: UserID, room_id: RoomID, ts: int) -> None:
        """Drop the hidden tags if the chat was hidden before ``ts`` (a newer message): a hide
        that came since stays."""
        async with self._hide_locks[user_id, room_id]:
            state = await self.chats.user_state(user_id, room_id)
            if state is not None and state.hidden_at is not None and state.hidden_at < ts:
                await self._set_hidden(user_id, room_id, False)

    async def _set_hidden(self, user_id: UserID, room_id: RoomID, hidden: bool) -> None:
        if hidden:
            ts = now_ms()
            await self.rooms.set_tag(user_id, room_id, LOW_PRIORITY_TAG, {"order": 0.5})
            await self.rooms.set_tag(user_id, room_id, HIDDEN_TAG, {"ts": ts, _PAIRED: True})
            await self._update(user_id, room_id, hidden_at=ts)
        else:
            await self.rooms.remove_tag(user_id, room_id, HIDDEN_TAG)
            await self.rooms.remove_tag(user_id, room_id, LOW_PRIORITY_TAG)
            await self._update(user_id, room_id, hidden_at=None)

    async def set_unread(self, user_id: UserID, room_id: RoomID, unread: bool) -> None:
        for event_type in UNREAD_TYPES:
            await self.rooms.set_room_account_data(
                user_id, room_id, event_type, {"unread": unread}
            )
        fields: dict[str, Any] = {"marked_unread": unread}
        if not unread:
            fields["read_ts"] = now_ms()
        await self._update(user_id, room_id, **fields)

    async def _update(self, user_id: UserID, room_id: RoomID, **fields: Any) -> None:
        async with self._locks[user_id]:
            self._writes[user_id] += 1
            state = await self.chats.user_state(user_id, room_id) or UserChatState()
            for name, value in fields.items():
                if name == "read_ts":
                    value = max(state.read_ts, value)
                setattr(state, name, value)
            await self.chats.save_user_states(user_id, {room_id: state})

    @staticmethod
    def is_hidden(state: UserChatState, chat: Chat) -> bool:
        """Hidden until a new message arrives after the user hid it."""
        return hidden(state, chat.last_message_ts)

    @staticmethod
    def is_unread(state: UserChatState, chat: Chat, user_id: str, bot: str) -> bool:
        return unread(state, chat.last_message_ts, chat.last_sender, user_id, bot)


def hidden(state: UserChatState, last_message_ts: int) -> bool:
    return state.hidden_at is not None and state.hidden_at >= last_message_ts


def unread(
    state: UserChatState, last_message_ts: int, last_sender: str | None, user_id: str, bot: str
) -> bool:
    if state.marked_unread:
        return True
    return last_sender not in (None, user_id, bot) and last_message_ts > state.read_ts


def _event(event_type: str, content: Any) -> dict[str, Any]:
    return {"type": event_type, "content": content}


def _reset(states: dict[str, UserChatState]) -> dict[str, UserChatState]:
    changed = {}
    for room_id, old in states.items():
        fresh = UserChatState(read_ts=old.read_ts)
        if fresh != old:
            states[room_id] = changed[room_id] = fresh
    return changed


def _apply(state: UserChatState, room: dict[str, Any], user_id: str) -> bool:
    before = (state.favourite, state.marked_unread, state.hidden_at, state.read_ts)
    for ev in (room.get("account_data") or {}).get("events") or []:
        content = ev.get("content") or {}
        if ev.get("type") == "m.tag":
            tags = content.get("tags") or {}
            state.favourite = FAVOURITE_TAG in tags
            state.hidden_at = _hidden_at(tags, state.hidden_at)
        elif ev.get("type") in UNREAD_TYPES:
            state.marked_unread = content.get("unread") is True
    for ev in (room.get("ephemeral") or {}).get("events") or []:
        if ev.get("type") != "m.receipt":
            continue
        for receipts in (ev.get("content") or {}).values():
            for receipt_type in ("m.read", "m.read.private"):
                ts = ((receipts or {}).get(receipt_type) or {}).get(user_id, {}).get("ts")
                if isinstance(ts, int) and ts > state.read_ts:
                    state.read_ts = ts
    return before != (state.favourite, state.marked_unread, state.hidden_at, state.read_ts)


def _hidden_at(tags: dict[str, Any], before: int | None) -> int | None:
    """When the chat was hidden, from the user's tags (None: not hidden). A tag set by another
    Matrix client has no time: it counts from when the bridge first saw it."""
    hidden = tags.get(HIDDEN_TAG)
    hidden = hidden if isinstance(hidden, dict) else ({} if HIDDEN_TAG in tags else None)
    low = LOW_PRIORITY_TAG in tags
    if hidden is not None and hidden.get(_PAIRED) is True and not low:
        return None  # taken out of low priority in an app: shown again
    if hidden is None and not low:
        return None
    ts = (hidden or {}).get("ts")
    return ts if isinstance(ts, int) else (before or now_ms())
