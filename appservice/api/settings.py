"""Settings endpoints: GET|PUT /settings and per-client direct chat access."""

from __future__ import annotations

from aiohttp import web
from mautrix.types import UserID

from bridge.chats.actors import resolve_actor
from bridge.directory import DirectoryService
from bridge.errors import Codes, forbidden
from bridge.settings.service import SettingsService

from .auth import Authenticator
from .http import Body, json_response, path_id, read_json


class SettingsRoutes:
    def __init__(
        self, auth: Authenticator, directory: DirectoryService, settings: SettingsService
    ) -> None:
        self.auth = auth
        self.directory = directory
        self.settings = settings

    def register(self, router: web.UrlDispatcher, prefix: str) -> None:
        router.add_get(f"{prefix}/settings", self.get_settings)
        router.add_put(f"{prefix}/settings", self.put_settings)
        router.add_put(
            f"{prefix}/practices/{{practice_id}}/clients/{{client_id}}/direct-chat",
            self.put_direct_chat,
        )

    async def get_settings(self, request: web.Request) -> web.Response:
        caller = await self.auth.authenticate(request)
        actor = await resolve_actor(self.directory.store, UserID(caller.require_user()))
        return json_response(await self.settings.get(actor))

    async def put_settings(self, request: web.Request) -> web.Response:
        caller = await self.auth.authenticate(request)
        actor = await resolve_actor(self.directory.store, UserID(caller.require_user()))
        body = await read_json(request)
        return json_response(await self.settings.put(actor, body))

    async def put_direct_chat(self, request: web.Request) -> web.Response:
        """The portal backend, or a staff member of the practice, turns a client's 1:1 chats
        with the practice on or off."""
        caller = await self.auth.authenticate(request)
        practice_id = path_id(request, "practice_id")
        client_id = path_id(request, "client_id")
        if not caller.backend or caller.user_id is not None:
            actor = await resolve_actor(self.directory.store, UserID(caller.require_user()))
            if actor.staff is None or actor.practice_id != practice_id:
                raise forbidden(
                    "Only the practice's team may change a client's direct chat access.",
                    Codes.STAFF_ONLY,
                )
        await self.directory.practice(practice_id)
        enabled = Body(await read_json(request)).boolean("enabled")
        client = await self.directory.set_direct_chat_access(
            practice_id, client_id, enabled, caller.actor
        )
        return json_response(client.to_json())
