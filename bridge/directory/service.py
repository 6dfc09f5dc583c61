"""Directory operations: practices, staff, clients, families, and portal sessions.

Access rules (docs/architecture.md#identities): staff and activated clients with portal access get
Matrix accounts; sub-records never do. Losing access ends every session at once and blocks new
ones; regaining it works again with the same account, so the same chats come back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from mautrix.types import UserID

from bridge.audit import AuditLog
from bridge.constants import PORTAL_DEVICE_PREFIX
from bridge.errors import Codes, PracticeError, unknown_practice
from bridge.identity import IdentityMapper
from bridge.ports import Homeserver, MatrixSession
from bridge.settings.model import PracticeSettings

from . import refusals as refuse
from .models import Client, Practice, Role, Staff
from .store import DirectoryStore

log = logging.getLogger("practice.directory")
# The display name of the devices the bridge mints for portal sessions.
PORTAL_DEVICE_NAME = "Practice portal"


def portal_device_id() -> str:
    """A fresh device id for a portal session, of a form no app sign-in may take (the logins
    module refuses a password or single sign-on login that names one)."""
    return PORTAL_DEVICE_PREFIX + secrets.token_hex(8).upper()


@dataclass(frozen=True)
class SessionGrant:
    session: MatrixSession
    homeserver: str

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.session.user_id,
            "access_token": self.session.access_token,
            "device_id": self.session.device_id,
            "homeserver": self.homeserver,
        }


@dataclass(eq=False)
class DirectoryService:
    store: DirectoryStore
    audit: AuditLog
    homeserver: Homeserver
    mapper: IdentityMapper
    plans: dict[str, dict[str, bool]]
    default_plan: str

    def __post_init__(self) -> None:
        # Called after a client record changed (the chats follow family moves).
        self.client_listeners: list[Callable[[Client | None, Client], Awaitable[None]]] = []
        # Called after a team member was removed, under their lock (their app sign-in ends).
        self.staff_removed_listeners: list[Callable[[Staff, str], Awaitable[None]]] = []
        # Minting and revoking for one user never interleave.
        self._user_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def user_lock(self, user_id: str) -> asyncio.Lock:
        """Held while a person's sessions or password change, so that an ending always wins
        over a minting that raced it."""
        return self._user_locks[user_id]

    # -- practices -------------------------------------------------------------------------

    async def practice(self, practice_id: str) -> Practice:
        practice = await self.store.get_practice(practice_id)
        if practice is None:
            raise unknown_practice(practice_id)
        return practice

    async def put_practice(
        self, practice_id: str, name: str, plan: str | None, timezone: str, actor: str
    ) -> tuple[Practice, bool]:
        plan = plan or self.default_plan
        if plan not in self.plans:
            raise refuse.unknown_plan(plan, self.plans)
        existing = await self.store.get_practice(practice_id)
        practice = Practice(
            practice_id, name, plan, timezone, existing.settings if existing else {}
        )
        await self.store.upsert_practice(practice)
        await self.audit.record(
            practice_id,
            actor,
            "practice.updated" if existing else "practice.created",
            practice_id,
            {"plan": plan, "timezone": timezone},
        )
        return (await self.practice(practice_id)), existing is None

    # -- staff -----------------------------------------------------------------------------

    async def put_staff(
        self, practice_id: str, staff_id: str, name: str, email: str, role: Role, actor: str
    ) -> tuple[Staff, bool]:
        await self.practice(practice_id)
        existing = await self.store.get_staff(practice_id, staff_id)
        staff = Staff(
            practice_id,
            staff_id,
            self.mapper.user_id("staff", practice_id, staff_id),
            name,
            email,
            role,
            active=True,
        )
        await self.homeserver.ensure_user(staff.user_id, name)
        await self.store.upsert_staff(staff)
        await self.audit.record(
            practice_id,
            actor,
            "staff.updated" if existing else "staff.created",
            staff.user_id,
            {"role": role, "restored": bool(existing and not existing.active)},
        )
        return staff, existing is None

    async def delete_staff(self, practice_id: str, staff_id: str, actor: str) -> Staff:
        await self.practice(practice_id)
        staff = await self.store.get_staff(practice_id, staff_id)
        if staff is None:
            raise refuse.staff_not_found()
        staff.active = False
        async with self._user_locks[staff.user_id]:
            await self.store.upsert_staff(staff)
            ended = await self._revoke(staff.user_id)
            for listener in self.staff_removed_listeners:
                await listener(staff, actor)
        await self.audit.record(
            practice_id, actor, "staff.removed", staff.user_id, {"sessions_ended": ended}
        )
        await self._audit_revoked(practice_id, actor, staff.user_id, ended, "staff.removed")
        return staff

    # -- clients ---------------------------------------------------------------------------

    async def put_client(
        self,
        practice_id: str,
        client_id: str,
        name: str,
        email: str,
        activated: bool,
        portal_access: bool,
        family_primary_id: str | None,
        actor: str,
    ) -> tuple[Client, bool]:
        practice = await self.practice(practice_id)
        if family_primary_id is not None:
            await self._check_primary(practice_id, client_id, family_primary_id)
        existing = await self.store.get_client(practice_id, client_id)
        if existing is None:
            rules = PracticeSettings.read(practice.settings)
            direct = not rules.disable_direct_chat_for_new_clients
        else:
            direct = existing.direct_chat_access
            if family_primary_id is not None and await self.store.list_family(
                practice_id, client_id
            ):
                raise refuse.family_primary()
        client = Client(
            practice_id,
            client_id,
            self.mapper.user_id("client", practice_id, client_id),
            name,
            email,
            activated,
            portal_access,
            family_primary_id,
            direct,
            active=True,
        )
        async with self._user_locks[client.user_id]:
            if client.has_account:
                await self.homeserver.ensure_user(client.user_id, name)
            await self.store.upsert_client(client)
            ended = 0
            if existing is not None and existing.has_account and not client.has_account:
                ended = await self._revoke(client.user_id)
        for listener in self.client_listeners:
            await listener(existing, client)
        details: dict[str, Any] = {
            "activated": activated,
            "portal_access": portal_access,
            "family_primary_id": family_primary_id,
        }
        action = "client.updated" if existing else "client.created"
        if existing is not None and existing.has_account != client.has_account:
            action = "client.access_granted" if client.has_account else "client.access_revoked"
            details["sessions_ended"] = ended
        await self.audit.record(practice_id, actor, action, client.user_id, details)
        await self._audit_revoked(practice_id, actor, client.user_id, ended, action)
        return client, existing is None

    async def _check_primary(self, practice_id: str, client_id: str, primary_id: str) -> None:
        if primary_id == client_id:
            raise refuse.own_primary()
        primary = await self.store.get_client(practice_id, primary_id)
        if primary is None or not primary.active:
            raise refuse.unknown_family_primary()
        if primary.is_sub_record:
            raise refuse.family_primary_is_sub_record(primary.family_primary_id)

    async def delete_client(self, practice_id: str, client_id: str, actor: str) -> Client:
        await self.practice(practice_id)
        client = await self.store.get_client(practice_id, client_id)
        if client is None:
            raise refuse.client_not_found()
        client.active = False
        async with self._user_locks[client.user_id]:
            await self.store.upsert_client(client)
            ended = await self._revoke(client.user_id)
        await self.audit.record(
            practice_id, actor, "client.removed", client.user_id, {"sessions_ended": ended}
        )
        await self._audit_revoked(practice_id, actor, client.user_id, ended, "client.removed")
        return client

    async def set_direct_chat_access(
        self, practice_id: str, client_id: str, enabled: bool, actor: str
    ) -> Client:
        client = await self.store.get_client(practice_id, client_id)
        if client is None or not client.active:
            raise refuse.client_not_found()
        before = replace(client)
        client.direct_chat_access = enabled
        await self.store.upsert_client(client)
        for listener in self.client_listeners:
            await listener(before, client)
        await self.audit.record(
            practice_id, actor, "client.direct_chat_access", client.user_id, {"enabled": enabled}
        )
        return client

    async def _audit_revoked(
        self, practice_id: str, actor: str, user_id: UserID, ended: int, reason: str
    ) -> None:
        """One row for the sessions an access change ended (none when there were none)."""
        if ended:
            await self.audit.record(
                practice_id, actor, "session.revoked", user_id, {"count": ended, "reason": reason}
            )

    async def _revoke(self, user_id: UserID) -> int:
        try:
            ended = await self.homeserver.logout_all(user_id)
            await self.store.drop_portal_devices(user_id)
            return ended
        except PracticeError:
            raise
        except Exception as e:
            log.exception("Ending the sessions of %s failed", user_id)
            raise PracticeError(
                Codes.UNKNOWN, "The homeserver did not end the sessions; try again.", 502
            ) from e

    # -- sessions --------------------------------------------------------------------------

    async def mint_staff_session(
        self, practice_id: str, staff_id: str, actor: str
    ) -> SessionGrant:
        await self.practice(practice_id)
        staff = await self.store.get_staff(practice_id, staff_id)
        if staff is None:
            raise refuse.staff_not_found()
        if not staff.active:
            raise refuse.staff_removed()
        async with self._user_locks[staff.user_id]:
            await self.homeserver.ensure_user(staff.user_id, staff.name)
            session = await self.homeserver.login(
                staff.user_id, PORTAL_DEVICE_NAME, portal_device_id()
            )
            await self.store.add_portal_device(staff.user_id, session.device_id)
        await self.audit.record(
            practice_id, actor, "session.minted", staff.user_id, {"device_id": session.device_id}
        )
        return SessionGrant(session, self.homeserver.base_url)

    async def mint_client_session(
        self, practice_id: str, client_id: str, actor: str
    ) -> SessionGrant:
        await self.practice(practice_id)
        client = await self.store.get_client(practice_id, client_id)
        if client is None:
            raise refuse.client_not_found()
        async with self._user_locks[client.user_id]:
            # Read again under the lock: a revocation that just finished must win.
            client = await self.store.get_client(practice_id, client_id) or client
            self.check_client_access(client)
            await self.homeserver.ensure_user(client.user_id, client.name)
            session = await self.homeserver.login(
                client.user_id, PORTAL_DEVICE_NAME, portal_device_id()
            )
            await self.store.add_portal_device(client.user_id, session.device_id)
        await self.audit.record(
            practice_id, actor, "session.minted", client.user_id, {"device_id": session.device_id}
        )
        return SessionGrant(session, self.homeserver.base_url)

    @staticmethod
    def check_client_access(client: Client) -> None:
        if not client.active:
            raise refuse.client_removed()
        if client.is_sub_record:
            raise refuse.sub_record(client.family_primary_id)
        if not client.activated:
            raise refuse.client_not_activated()
        if not client.portal_access:
            raise refuse.no_portal_access()
