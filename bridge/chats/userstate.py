"""Per-user chat state: pinned, marked unread, hidden, read up to when.

Matrix account data is the truth (docs/chats.md#pin-unread-hide): the API writes it as the user,
and any Matrix client may change it. The bridge mirrors it by an incremental /sync as the user
(account data and receipts only, no timelines), so reading the chat list costs one small request,
not one per room.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mautrix.types import RoomID, UserID

from bridge.clock import now_ms
from bridge.constants import FAVOURITE_TAG, HIDDEN_TAG, MARKED_UNREAD, MARKED_UNREAD_UNSTABLE
from bridge.ports import Rooms

from .models import Chat, UserChatState
from .store import ChatStore

log = logging.getLogger("practice.userstate")

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


class UserStateMirror:
    def __init__(self, chats: ChatStore, rooms: Rooms) -> None:
        self.chats = chats
        self.rooms = rooms

    async def refresh(self, user_id: UserID) -> dict[str, UserChatState]:
        """Catch up with the user's account data and receipts; return every chat's state."""
        since = await self.chats.sync_token(user_id)
        # What is mirrored already is read while Synapse answers.
        states, resp = await asyncio.gather(
            self.chats.user_states(user_id), self.rooms.sync(user_id, since, SYNC_FILTER)
        )
        changed: dict[str, UserChatState] = {}
        if since is None:
            # A first sync lists only what is set: anything else mirrored before is gone.
            for room_id, old in states.items():
                fresh = UserChatState(read_ts=old.read_ts)
                if fresh != old:
                    states[room_id] = changed[room_id] = fresh
        for room_id, room in (resp.get("rooms", {}).get("join") or {}).items():
            state = states.get(room_id) or UserChatState()
            if _apply(state, room, user_id):
                changed[room_id] = state
                states[room_id] = state
        next_batch = resp.get("next_batch")
        if changed or next_batch != since:
            await self.chats.save_user_states(user_id, changed, next_batch)
        return states

    async def set_pinned(self, user_id: UserID, room_id: RoomID, pinned: bool) -> None:
        if pinned:
            await self.rooms.set_tag(user_id, room_id, FAVOURITE_TAG, {"order": 0.5})
        else:
            await self.rooms.remove_tag(user_id, room_id, FAVOURITE_TAG)
        await self._update(user_id, room_id, favourite=pinned)

    async def set_hidden(self, user_id: UserID, room_id: RoomID, hidden: bool) -> None:
        if hidden:
            ts = now_ms()
            await self.rooms.set_tag(user_id, room_id, HIDDEN_TAG, {"ts": ts})
            await self._update(user_id, room_id, hidden_at=ts)
        else:
            await self.rooms.remove_tag(user_id, room_id, HIDDEN_TAG)
            await self._update(user_id, room_id, hidden_at=None)

    async def set_unread(self, user_id: UserID, room_id: RoomID, unread: bool) -> None:
        for event_type in (MARKED_UNREAD, MARKED_UNREAD_UNSTABLE):
            await self.rooms.set_room_account_data(
                user_id, room_id, event_type, {"unread": unread}
            )
        fields: dict[str, Any] = {"marked_unread": unread}
        if not unread:
            fields["read_ts"] = now_ms()
        await self._update(user_id, room_id, **fields)

    async def _update(self, user_id: UserID, room_id: RoomID, **fields: Any) -> None:
        states = await self.chats.user_states(user_id)
        state = states.get(room_id) or UserChatState()
        for name, value in fields.items():
            if name == "read_ts":
                value = max(state.read_ts, value)
            setattr(state, name, value)
        await self.chats.save_user_states(user_id, {room_id: state})

    @staticmethod
    def is_hidden(state: UserChatState, chat: Chat) -> bool:
        """Hidden until a new message arrives after the user hid it."""
        return state.hidden_at is not None and state.hidden_at >= chat.last_message_ts

    @staticmethod
    def is_unread(state: UserChatState, chat: Chat, user_id: str, bot: str) -> bool:
        if state.marked_unread:
            return True
        return (
            chat.last_sender not in (None, user_id, bot) and chat.last_message_ts > state.read_ts
        )


def _apply(state: UserChatState, room: dict[str, Any], user_id: str) -> bool:
    before = (state.favourite, state.marked_unread, state.hidden_at, state.read_ts)
    for ev in (room.get("account_data") or {}).get("events") or []:
        content = ev.get("content") or {}
        if ev.get("type") == "m.tag":
            tags = content.get("tags") or {}
            state.favourite = FAVOURITE_TAG in tags
            if HIDDEN_TAG in tags:
                ts = (tags[HIDDEN_TAG] or {}).get("ts")
                # A tag set by another Matrix client has no time: it counts from now on.
                state.hidden_at = ts if isinstance(ts, int) else (state.hidden_at or now_ms())
            else:
                state.hidden_at = None
        elif ev.get("type") in (MARKED_UNREAD, MARKED_UNREAD_UNSTABLE):
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
