"""Directory, sessions and audit endpoints (docs/api.md). Directory changes are backend-only."""

from __future__ import annotations

import re

from aiohttp import web

from bridge.audit import AuditLog
from bridge.directory import DirectoryService
from bridge.directory.models import ROLES, Role
from bridge.errors import Codes, PracticeError, forbidden, invalid_param, missing_param

from .auth import Authenticator
from .http import Body, check_id, json_response, path_id, read_json

_INT_RE = re.compile(r"-?[0-9]{1,19}")


class DirectoryRoutes:
    def __init__(
        self, service: DirectoryService, audit: AuditLog, auth: Authenticator, max_text: int
    ) -> None:
        self.service = service
        self.audit = audit
        self.auth = auth
        self.max_text = max_text

    def register(self, router: web.UrlDispatcher, prefix: str) -> None:
        base = f"{prefix}/practices/{{practice_id}}"
        router.add_put(base, self.put_practice)
        router.add_put(f"{base}/staff/{{staff_id}}", self.put_staff)
        router.add_delete(f"{base}/staff/{{staff_id}}", self.delete_staff)
        router.add_put(f"{base}/clients/{{client_id}}", self.put_client)
        router.add_delete(f"{base}/clients/{{client_id}}", self.delete_client)
        router.add_post(f"{base}/sessions", self.post_session)
        router.add_get(f"{prefix}/audit", self.get_audit)

    async def _backend(self, request: web.Request) -> str:
        caller = await self.auth.authenticate(request)
        caller.require_backend()
        return caller.actor

    async def _body(self, request: web.Request) -> Body:
        return Body(await read_json(request), self.max_text)

    async def put_practice(self, request: web.Request) -> web.Response:
        actor = await self._backend(request)
        practice_id = path_id(request, "practice_id")
        body = await self._body(request)
        practice, created = await self.service.put_practice(
            practice_id,
            body.req_text("name", max_len=256, single_line=True),
            body.text("plan", required=False, max_len=64, single_line=True),
            body.timezone("timezone"),
            actor,
        )
        return json_response({**practice.to_json(), "created": created}, 201 if created else 200)

    async def put_staff(self, request: web.Request) -> web.Response:
        actor = await self._backend(request)
        practice_id = path_id(request, "practice_id")
        staff_id = path_id(request, "staff_id")
        body = await self._body(request)
        role: Role = body.choice("role", ROLES)  # type: ignore[assignment]
        staff, created = await self.service.put_staff(
            practice_id,
            staff_id,
            body.req_text("name", max_len=256, single_line=True),
            body.email("email"),
            role,
            actor,
        )
        return json_response({**staff.to_json(), "created": created}, 201 if created else 200)

    async def delete_staff(self, request: web.Request) -> web.Response:
        actor = await self._backend(request)
        practice_id = path_id(request, "practice_id")
        staff_id = path_id(request, "staff_id")
        await self.service.practice(practice_id)
        staff = await self.service.delete_staff(practice_id, staff_id, actor)
        self.auth.forget_user(staff.user_id)
        return json_response(staff.to_json())

    async def put_client(self, request: web.Request) -> web.Response:
        actor = await self._backend(request)
        practice_id = path_id(request, "practice_id")
        client_id = path_id(request, "client_id")
        body = await self._body(request)
        client, created = await self.service.put_client(
            practice_id,
            client_id,
            body.req_text("name", max_len=256, single_line=True),
            body.email("email"),
            body.boolean("activated"),
            body.boolean("portal_access"),
            body.ident("family_primary_id", required=False),
            actor,
        )
        if not client.has_account:
            self.auth.forget_user(client.user_id)
        return json_response({**client.to_json(), "created": created}, 201 if created else 200)

    async def delete_client(self, request: web.Request) -> web.Response:
        actor = await self._backend(request)
        practice_id = path_id(request, "practice_id")
        client_id = path_id(request, "client_id")
        await self.service.practice(practice_id)
        client = await self.service.delete_client(practice_id, client_id, actor)
        self.auth.forget_user(client.user_id)
        return json_response(client.to_json())

    async def post_session(self, request: web.Request) -> web.Response:
        actor = await self._backend(request)
        practice_id = path_id(request, "practice_id")
        body = await self._body(request)
        staff_id = body.ident("staff_id", required=False)
        client_id = body.ident("client_id", required=False)
        if staff_id is None and client_id is None:
            raise PracticeError(
                Codes.MISSING_PARAM,
                "Give one of 'staff_id' and 'client_id'.",
                400,
                param="staff_id",
            )
        if staff_id is not None and client_id is not None:
            raise invalid_param("client_id", "Give only one of 'staff_id' and 'client_id'.")
        if staff_id is not None:
            grant = await self.service.mint_staff_session(practice_id, staff_id, actor)
        else:
            assert client_id is not None
            grant = await self.service.mint_client_session(practice_id, client_id, actor)
        return json_response(grant.to_json(), 201)

    async def get_audit(self, request: web.Request) -> web.Response:
        caller = await self.auth.authenticate(request)
        limit = _int_query(request, "limit", 1, 1000) or 100
        before = _int_query(request, "before", 1, 2**62)
        if caller.backend and caller.user_id is None:
            if "practice_id" not in request.query:
                raise missing_param("practice_id")
            practice_id = check_id("practice_id", request.query["practice_id"])
            await self.service.practice(practice_id)
        else:
            staff = await self.service.store.get_staff_by_user(caller.require_user())
            if staff is None or not staff.active or staff.role != "owner":
                raise forbidden("Only the practice owner may read the audit log.")
            practice_id = staff.practice_id
            asked = request.query.get("practice_id")
            if asked is not None and asked != practice_id:
                raise forbidden("An owner reads only their own practice's audit log.")
        entries = await self.audit.list(practice_id, limit=limit, before=before)
        return json_response({"entries": [e.to_json() for e in entries]})


def _int_query(request: web.Request, name: str, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not _INT_RE.fullmatch(raw):
        raise invalid_param(name, f"'{name}' must be an integer.")
    value = int(raw)
    if not low <= value <= high:
        raise invalid_param(name, f"'{name}' must be between {low} and {high}.")
    return value


__all__ = ["DirectoryRoutes", "PracticeError"]
