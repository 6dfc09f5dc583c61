"""Chat endpoints as a user (docs/api.md#chats): contacts, chat list, starting, sharing,
converting, pinning, hiding, marking unread and deleting chats."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from mautrix.types import RoomID

from bridge.chats.bulk import open_direct_chats
from bridge.chats.listing import ChatDirectory
from bridge.chats.service import ChatService
from bridge.chats.userstate import UserStateMirror

from .bodies import (
    BulkDirectRequest,
    ChatsQuery,
    DirectChatRequest,
    GroupChatRequest,
    ShareRequest,
)
from .http import json_response
from .routing import Call

Plain = Call[None, None]


class ChatRoutes:
    def __init__(
        self, service: ChatService, listing: ChatDirectory, mirror: UserStateMirror
    ) -> None:
        self.service = service
        self.listing = listing
        self.mirror = mirror

    async def get_contacts(self, call: Plain) -> web.Response:
        return json_response(await self.listing.contacts(call.user))

    async def get_chats(self, call: Call[None, ChatsQuery]) -> web.Response:
        query = call.query
        page = await self.listing.list_chats(
            call.user, query.filter, query.include_hidden == "true", query.limit, query.start
        )
        answer: dict[str, Any] = {"chats": page.chats}
        if page.next_batch is not None:
            answer["next_batch"] = page.next_batch
        return json_response(answer)

    async def post_direct(self, call: Call[DirectChatRequest, None]) -> web.Response:
        actor, body = call.user, call.body
        chat, created = await self.service.start_direct(
            actor,
            client_id=body.client_id,
            staff_id=body.staff_id,
            chat_id=body.chat_id,
            create_new=body.create_new,
        )
        if not created:
            # Opening a chat from the contacts brings it back if the caller had hidden it.
            states = await self.mirror.chats.user_states(actor.user_id)
            state = states.get(chat.room_id)
            if state is not None and state.hidden_at is not None:
                await self.mirror.set_hidden(actor.user_id, chat.room_id, False)
        return json_response(
            {"chat_id": chat.room_id, "created": created}, 201 if created else 200
        )

    async def post_direct_bulk(self, call: Call[BulkDirectRequest, None]) -> web.Response:
        results = await open_direct_chats(self.service, call.user, call.body.client_ids)
        return json_response({"results": results})

    async def post_group(self, call: Call[GroupChatRequest, None]) -> web.Response:
        body = call.body
        chat = await self.service.create_group(
            call.user, body.name, body.client_ids, body.staff_ids
        )
        return json_response({"chat_id": chat.room_id, "created": True}, 201)

    async def post_convert(self, call: Call[GroupChatRequest, None]) -> web.Response:
        body = call.body
        chat = await self.service.convert(
            call.user, call.path["chat_id"], body.name, body.client_ids, body.staff_ids
        )
        return json_response(chat.summary())

    async def post_share(self, call: Call[ShareRequest, None]) -> web.Response:
        chat = await self.service.share(call.user, call.path["chat_id"], call.body.staff_id)
        return json_response(chat.summary())

    async def delete_chat(self, call: Plain) -> web.Response:
        await self.service.delete(call.user, call.path["chat_id"])
        return json_response({"deleted": True})

    async def pin(self, call: Plain) -> web.Response:
        chat, on = await self._flag(call)
        await self.mirror.set_pinned(call.user.user_id, chat, on)
        return json_response({"chat_id": chat, "pinned": on})

    async def hide(self, call: Plain) -> web.Response:
        chat, on = await self._flag(call)
        await self.mirror.set_hidden(call.user.user_id, chat, on)
        return json_response({"chat_id": chat, "hidden": on})

    async def mark_unread(self, call: Plain) -> web.Response:
        chat, on = await self._flag(call)
        await self.mirror.set_unread(call.user.user_id, chat, on)
        return json_response({"chat_id": chat, "unread": on})

    async def _flag(self, call: Plain) -> tuple[RoomID, bool]:
        """The chat a flag route names (one the caller sees), and whether it sets the flag."""
        chat = await self.service.visible_chat(call.user, call.path["chat_id"])
        return chat.room_id, call.request.method == "PUT"
