"""Directory, sessions and audit endpoints (docs/api.md). Directory changes are backend-only."""

from __future__ import annotations

from aiohttp import web

from bridge.audit import AuditLog
from bridge.directory import DirectoryService
from bridge.errors import PracticeError, forbidden, missing_param

from .auth import Authenticator
from .bodies import AuditQuery, ClientWrite, PracticeWrite, SessionRequest, StaffWrite
from .http import json_response
from .routing import Call


class DirectoryRoutes:
    def __init__(self, service: DirectoryService, audit: AuditLog, auth: Authenticator) -> None:
        self.service = service
        self.audit = audit
        self.auth = auth

    async def put_practice(self, call: Call[PracticeWrite, None]) -> web.Response:
        body = call.body
        practice, created = await self.service.put_practice(
            call.path["practice_id"], body.name, body.plan, body.timezone, call.caller.actor
        )
        return json_response({**practice.to_json(), "created": created}, 201 if created else 200)

    async def put_staff(self, call: Call[StaffWrite, None]) -> web.Response:
        body = call.body
        staff, created = await self.service.put_staff(
            call.path["practice_id"],
            call.path["staff_id"],
            body.name,
            body.email,
            body.role,
            call.caller.actor,
        )
        return json_response({**staff.to_json(), "created": created}, 201 if created else 200)

    async def delete_staff(self, call: Call[None, None]) -> web.Response:
        path = call.path
        staff = await self.service.delete_staff(
            path["practice_id"], path["staff_id"], call.caller.actor
        )
        self.auth.forget_user(staff.user_id)
        return json_response(staff.to_json())

    async def put_client(self, call: Call[ClientWrite, None]) -> web.Response:
        body = call.body
        client, created = await self.service.put_client(
            call.path["practice_id"],
            call.path["client_id"],
            body.name,
            body.email,
            body.activated,
            body.portal_access,
            body.family_primary_id,
            call.caller.actor,
        )
        if not client.has_account:
            self.auth.forget_user(client.user_id)
        return json_response({**client.to_json(), "created": created}, 201 if created else 200)

    async def delete_client(self, call: Call[None, None]) -> web.Response:
        path = call.path
        client = await self.service.delete_client(
            path["practice_id"], path["client_id"], call.caller.actor
        )
        self.auth.forget_user(client.user_id)
        return json_response(client.to_json())

    async def post_session(self, call: Call[SessionRequest, None]) -> web.Response:
        practice_id, actor = call.path["practice_id"], call.caller.actor
        if call.body.staff_id is not None:
            grant = await self.service.mint_staff_session(practice_id, call.body.staff_id, actor)
        else:
            assert call.body.client_id is not None
            grant = await self.service.mint_client_session(practice_id, call.body.client_id, actor)
        return json_response(grant.to_json(), 201)

    async def get_audit(self, call: Call[None, AuditQuery]) -> web.Response:
        caller, asked = call.caller, call.query.practice_id
        if caller.backend and caller.user_id is None:
            if asked is None:
                raise missing_param("practice_id")
            practice_id = asked
            await self.service.practice(practice_id)
        else:
            staff = await self.service.store.get_staff_by_user(caller.require_user())
            if staff is None or not staff.active or staff.role != "owner":
                raise not_the_owner()
            practice_id = staff.practice_id
            if asked is not None and asked != practice_id:
                raise forbidden("An owner reads only their own practice's audit log.")
        entries = await self.audit.list(
            practice_id, limit=call.query.limit, before=call.query.before
        )
        return json_response({"entries": [e.to_json() for e in entries]})


def not_the_owner() -> PracticeError:
    return forbidden("Only the practice owner may read the audit log.")
