"""Chat endpoints as a user (docs/api.md#chats): contacts, chat list, starting, sharing,
converting, pinning, hiding, marking unread and deleting chats."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from mautrix.types import UserID

from bridge.chats.actors import Actor, resolve_actor
from bridge.chats.listing import FILTERS, ChatDirectory
from bridge.chats.service import ChatService
from bridge.chats.userstate import UserStateMirror
from bridge.directory import DirectoryStore
from bridge.errors import invalid_param

from .auth import Authenticator
from .http import Body, check_id, json_response, read_json

_CHAT_ID_RE = re.compile(r"![A-Za-z0-9._~:+/=-]{1,254}")
_FLAG_FIELDS = {"pin": "pinned", "hide": "hidden", "unread": "unread"}


def _chat_id(request: web.Request) -> str:
    value = request.match_info.get("chat_id", "")
    if not _CHAT_ID_RE.fullmatch(value):
        raise invalid_param("chat_id", "'chat_id' must be a chat id such as '!abc123'.")
    return value


def _body_chat_id(body: Body) -> str | None:
    """An optional chat id in a body, held to the same form as in a path."""
    value = body.data.get("chat_id")
    if value is not None and not (isinstance(value, str) and _CHAT_ID_RE.fullmatch(value)):
        raise invalid_param("chat_id", "'chat_id' must be a chat id such as '!abc123'.")
    return value


def _ids(body: Body, name: str) -> list[str]:
    value = body.data.get(name, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_param(name, f"'{name}' must be a list of ids.")
    return [check_id(name, item) for item in value]


class ChatRoutes:
    def __init__(
        self,
        auth: Authenticator,
        directory: DirectoryStore,
        service: ChatService,
        listing: ChatDirectory,
        mirror: UserStateMirror,
        max_text: int,
    ) -> None:
        self.auth = auth
        self.directory = directory
        self.service = service
        self.listing = listing
        self.mirror = mirror
        self.max_text = max_text

    def register(self, router: web.UrlDispatcher, prefix: str) -> None:
        router.add_get(f"{prefix}/contacts", self.get_contacts)
        router.add_get(f"{prefix}/chats", self.get_chats)
        router.add_post(f"{prefix}/chats/direct", self.post_direct)
        router.add_post(f"{prefix}/chats/group", self.post_group)
        router.add_post(f"{prefix}/chats/{{chat_id}}/convert", self.post_convert)
        router.add_post(f"{prefix}/chats/{{chat_id}}/share", self.post_share)
        router.add_delete(f"{prefix}/chats/{{chat_id}}", self.delete_chat)
        for flag in ("pin", "hide", "unread"):
            router.add_put(f"{prefix}/chats/{{chat_id}}/{flag}", self.put_flag)
            router.add_delete(f"{prefix}/chats/{{chat_id}}/{flag}", self.put_flag)

    async def _actor(self, request: web.Request) -> Actor:
        caller = await self.auth.authenticate(request)
        return await resolve_actor(self.directory, UserID(caller.require_user()))

    async def _body(self, request: web.Request) -> Body:
        return Body(await read_json(request), self.max_text)

    async def get_contacts(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response(await self.listing.contacts(actor))

    async def get_chats(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        chat_filter = request.query.get("filter", "all")
        if chat_filter not in FILTERS:
            raise invalid_param("filter", "'filter' must be one of all, unread, pinned.")
        include_hidden = request.query.get("include_hidden", "false")
        if include_hidden not in ("true", "false"):
            raise invalid_param("include_hidden", "'include_hidden' must be true or false.")
        chats = await self.listing.list_chats(
            actor,
            chat_filter,  # type: ignore[arg-type]
            include_hidden == "true",
        )
        return json_response({"chats": chats})

    async def post_direct(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self._body(request)
        chat_id = _body_chat_id(body)
        chat, created = await self.service.start_direct(
            actor,
            client_id=body.ident("client_id", required=False),
            staff_id=body.ident("staff_id", required=False),
            chat_id=chat_id,
            create_new=body.boolean("create_new", required=False),
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

    async def post_group(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self._body(request)
        chat = await self.service.create_group(
            actor,
            body.req_text("name", max_len=256, single_line=True),
            _ids(body, "client_ids"),
            _ids(body, "staff_ids"),
        )
        return json_response({"chat_id": chat.room_id, "created": True}, 201)

    async def post_convert(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        chat_id = _chat_id(request)
        body = await self._body(request)
        chat = await self.service.convert(
            actor,
            chat_id,
            body.req_text("name", max_len=256, single_line=True),
            _ids(body, "client_ids"),
            _ids(body, "staff_ids"),
        )
        return json_response(_summary(chat))

    async def post_share(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        chat_id = _chat_id(request)
        body = await self._body(request)
        staff_id = body.ident("staff_id")
        assert staff_id is not None
        chat = await self.service.share(actor, chat_id, staff_id)
        return json_response(_summary(chat))

    async def delete_chat(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        await self.service.delete(actor, _chat_id(request))
        return json_response({"deleted": True})

    async def put_flag(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        chat = await self.service.visible_chat(actor, _chat_id(request))
        on = request.method == "PUT"
        flag = request.path.rsplit("/", 1)[-1]
        if flag == "pin":
            await self.mirror.set_pinned(actor.user_id, chat.room_id, on)
        elif flag == "hide":
            await self.mirror.set_hidden(actor.user_id, chat.room_id, on)
        else:
            await self.mirror.set_unread(actor.user_id, chat.room_id, on)
        return json_response({"chat_id": chat.room_id, _FLAG_FIELDS[flag]: on})


def _summary(chat: Any) -> dict[str, Any]:
    return dict(chat.summary())
