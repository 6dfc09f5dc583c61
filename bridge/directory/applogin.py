"""Matrix app sign-in for staff: a password for Element and the other standard Matrix apps.

The portal backend has the bridge issue a fresh random password for a team member's Matrix
account; it is shown once and never kept here: Synapse stores its hash (admin API), the bridge
only records that the person holds one (``app_login``). Issuing again replaces it; ending it (or
removing the team member) sets a password nobody knows and ends every session of the person that
the bridge did not mint for the portal (``portal_device``). Clients never get one
(docs/security.md#matrix-app-sign-in).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mautrix.types import UserID

from bridge.audit import AuditLog
from bridge.constants import CHAT_LIST_DEVICE
from bridge.errors import Codes, PracticeError

from . import refusals as refuse
from .models import Staff
from .service import DirectoryService

log = logging.getLogger("practice.applogin")

# 32 random bytes: far past any guessing, even without Synapse's login rate limits.
PASSWORD_BYTES = 32


@dataclass(frozen=True)
class AppLogin:
    """What the portal shows the team member once."""

    user_id: UserID
    password: str
    homeserver: str

    @property
    def username(self) -> str:
        """The localpart: what a Matrix app's sign-in form takes with the homeserver's URL."""
        return self.user_id[1:].split(":", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "password": self.password,
            "homeserver": self.homeserver,
        }


class AppLoginService:
    def __init__(self, directory: DirectoryService, audit: AuditLog) -> None:
        self.directory = directory
        self.store = directory.store
        self.hs = directory.homeserver
        self.audit = audit
        # Called with the team member's user id after a password was issued (the bot's room).
        self.issued_listeners: list[Callable[[UserID], Awaitable[None]]] = []
        directory.staff_removed_listeners.append(self._staff_removed)

    async def issue(self, practice_id: str, staff_id: str, logout: bool, actor: str) -> AppLogin:
        """A fresh password for the team member's Matrix account, replacing any earlier one;
        with ``logout`` the apps signed in with the old one are signed out too."""
        await self.directory.practice(practice_id)
        staff = await self._staff(practice_id, staff_id)
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        async with self.directory.user_lock(staff.user_id):
            # Read again under the lock: a removal that just finished must win.
            staff = await self._staff(practice_id, staff_id)
            await self.hs.ensure_user(staff.user_id, staff.name)
            await self._call(self.hs.set_password(staff.user_id, password))
            replaced = await self.store.set_app_login(staff)
            ended = await self._end_app_sessions(staff.user_id) if logout else 0
        await self.audit.record(
            practice_id,
            actor,
            "app_login.replaced" if replaced else "app_login.issued",
            staff.user_id,
            {"apps_signed_out": ended} if logout else {},
        )
        for listener in self.issued_listeners:
            try:
                await listener(staff.user_id)
            except Exception:
                log.exception("After issuing the app sign-in of %s", staff.user_id)
        return AppLogin(staff.user_id, password, self.hs.base_url)

    async def end(self, practice_id: str, staff_id: str, actor: str) -> dict[str, Any]:
        """The password stops working and every Matrix app session of the person ends; their
        portal sessions stay. Ending one that was never issued still does both."""
        await self.directory.practice(practice_id)
        staff = await self.store.get_staff(practice_id, staff_id)
        if staff is None:
            raise refuse.staff_not_found()
        async with self.directory.user_lock(staff.user_id):
            held, ended = await self._end(staff.user_id)
        await self.audit.record(
            practice_id,
            actor,
            "app_login.ended",
            staff.user_id,
            {"held": held, "apps_signed_out": ended, "reason": "ended"},
        )
        return {"user_id": staff.user_id, "apps_signed_out": ended}

    async def _staff_removed(self, staff: Staff, actor: str) -> None:
        """A removed team member's password stops working (their sessions have all ended)."""
        held, ended = await self._end(staff.user_id)
        if held:
            await self.audit.record(
                staff.practice_id,
                actor,
                "app_login.ended",
                staff.user_id,
                {"held": True, "apps_signed_out": ended, "reason": "staff.removed"},
            )

    async def _end(self, user_id: UserID) -> tuple[bool, int]:
        # A password nobody is told: Synapse cannot drop one, only replace it.
        await self._call(self.hs.set_password(user_id, secrets.token_urlsafe(PASSWORD_BYTES)))
        held = await self.store.drop_app_login(user_id)
        return held, await self._end_app_sessions(user_id)

    async def _end_app_sessions(self, user_id: UserID) -> int:
        """End every session of the user that the bridge did not mint for the portal (nor
        keeps to read their chat list)."""
        devices = set(await self._call(self.hs.devices(user_id)))
        portal = await self.store.portal_devices(user_id)
        others = sorted(devices - portal - {CHAT_LIST_DEVICE})
        await self._call(self.hs.delete_devices(user_id, others))
        if portal - devices:
            await self.store.drop_portal_devices(user_id, portal - devices)
        return len(others)

    async def _staff(self, practice_id: str, staff_id: str) -> Staff:
        staff = await self.store.get_staff(practice_id, staff_id)
        if staff is None:
            if await self.store.get_client(practice_id, staff_id) is not None:
                raise refuse.app_login_staff_only()
            raise refuse.staff_not_found()
        if not staff.active:
            raise refuse.staff_removed()
        return staff

    @staticmethod
    async def _call(step: Awaitable[Any]) -> Any:
        """A homeserver call; its failure is a clear 502, never a 500 (and never the request,
        which may carry a password)."""
        try:
            return await step
        except PracticeError:
            raise
        except Exception as e:
            log.warning("The homeserver refused an app sign-in step: %s", type(e).__name__)
            raise PracticeError(
                Codes.UNKNOWN,
                "The homeserver did not change the Matrix app sign-in; try again.",
                502,
            ) from e
