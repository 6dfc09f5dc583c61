"""Matrix app sign-in for staff (docs/api.md#matrix-app-sign-in): issued, replaced and ended by
the portal backend. The answer that carries a password is the only place it ever appears."""

from __future__ import annotations

from aiohttp import web

from bridge.directory.applogin import AppLoginService

from .auth import Authenticator
from .bodies import AppLoginQuery
from .http import json_response
from .routing import Call


class AppLoginRoutes:
    def __init__(self, service: AppLoginService, auth: Authenticator) -> None:
        self.service = service
        self.auth = auth

    async def post_staff(self, call: Call[None, AppLoginQuery]) -> web.Response:
        login = await self.service.issue(
            call.path["practice_id"],
            call.path["staff_id"],
            call.query.logout == "true",
            call.caller.actor,
        )
        if call.query.logout == "true":
            self.auth.forget_user(login.user_id)
        return json_response(login.to_json(), 201, headers={"Cache-Control": "no-store"})

    async def delete_staff(self, call: Call[None, None]) -> web.Response:
        ended = await self.service.end(
            call.path["practice_id"], call.path["staff_id"], call.caller.actor
        )
        self.auth.forget_user(ended["user_id"])
        return json_response(ended)
