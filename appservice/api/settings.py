"""Settings handlers: GET|PUT /settings and per-client direct chat access."""

from __future__ import annotations

from aiohttp import web
from mautrix.types import UserID

from bridge.chats.actors import resolve_actor
from bridge.directory import DirectoryService
from bridge.errors import Codes, PracticeError, forbidden
from bridge.settings.model import Settings
from bridge.settings.service import SettingsService

from .bodies import DirectChatAccess
from .http import json_response
from .routing import Call


class SettingsRoutes:
    def __init__(self, directory: DirectoryService, settings: SettingsService) -> None:
        self.directory = directory
        self.settings = settings

    async def get_settings(self, call: Call[None, None]) -> web.Response:
        return json_response(await self.settings.get(call.user))

    async def put_settings(self, call: Call[Settings, None]) -> web.Response:
        return json_response(await self.settings.put(call.user, call.body))

    async def put_direct_chat(self, call: Call[DirectChatAccess, None]) -> web.Response:
        """The portal backend, or a staff member of the practice, turns a client's 1:1 chats
        with the practice on or off."""
        caller, practice_id = call.caller, call.path["practice_id"]
        if not caller.backend or caller.user_id is not None:
            actor = await resolve_actor(self.directory.store, UserID(caller.require_user()))
            if actor.staff is None or actor.practice_id != practice_id:
                raise not_the_team()
        await self.directory.practice(practice_id)
        client = await self.directory.set_direct_chat_access(
            practice_id, call.path["client_id"], call.body.enabled, caller.actor
        )
        return json_response(client.to_json())


def not_the_team() -> PracticeError:
    return forbidden(
        "Only the practice's team may change a client's direct chat access.", Codes.STAFF_ONLY
    )
