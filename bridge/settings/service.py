"""GET|PUT /settings: the caller's preferences and, for an owner, the practice's rules."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bridge.audit import AuditLog
from bridge.chats.actors import Actor
from bridge.constants import PREFERENCES_EVENT
from bridge.directory import DirectoryStore
from bridge.errors import Codes, PracticeError, forbidden
from bridge.ports import Rooms

from . import model
from .model import PracticeSettings, Settings, UserSettings
from .propagate import PolicyPropagator
from .store import SettingsStore

log = logging.getLogger("practice.settings")
# Practice settings that the policy state of rooms carries.
_POLICY_KEYS = ("client_message_limit",)


@dataclass(eq=False)
class SettingsService:
    store: SettingsStore
    directory: DirectoryStore
    rooms: Rooms
    audit: AuditLog
    propagator: PolicyPropagator

    async def get(self, actor: Actor) -> dict[str, Any]:
        settings = UserSettings.read(await self.store.user(actor.user_id)).model_dump()
        if actor.staff is None:
            settings.pop("autoresponder")
        # What a frontend shows the caller: the autoresponder (staff), the practice's rules
        # (the owner), read markers (staff).
        settings["role"] = actor.staff.role if actor.staff is not None else "client"
        practice = PracticeSettings.read(await self._stored_practice(actor))
        settings["practice"] = practice.model_dump()
        pending = await self.store.count_stale(actor.practice_id)
        settings["practice_applied"] = pending == 0
        settings["practice_pending_chats"] = pending
        return settings

    async def put(self, actor: Actor, patch: Settings) -> dict[str, Any]:
        """Merge ``patch`` into the caller's settings (and, for the owner, the practice's)."""
        sent = patch.model_fields_set
        if "autoresponder" in sent and not actor.is_staff:
            raise autoresponder_staff_only()
        if "practice" in sent and not actor.is_owner:
            raise practice_owner_only()
        user = UserSettings.read(await self.store.user(actor.user_id))
        practice = PracticeSettings.read(await self._stored_practice(actor))
        after = model.apply(user, practice, patch)
        if sent - {"practice"}:
            await self._put_user(actor, after, sent)
        if "practice" in sent:
            await self._put_practice(actor, practice.model_dump(), after.practice.model_dump())
        return await self.get(actor)

    async def _stored_practice(self, actor: Actor) -> dict[str, Any]:
        practice = await self.directory.get_practice(actor.practice_id)
        assert practice is not None
        return practice.settings

    async def _put_user(self, actor: Actor, after: Settings, sent: set[str]) -> None:
        settings = after.model_dump(exclude={"practice"})
        await self.store.save_user(actor.user_id, settings)
        if sent.intersection(model.DEVICE_PREFERENCES):
            await self.rooms.set_account_data(
                actor.user_id,
                PREFERENCES_EVENT,
                {key: settings[key] for key in model.DEVICE_PREFERENCES},
            )

    async def _put_practice(
        self, actor: Actor, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        changed = {k: after[k] for k in after if after[k] != before[k]}
        if not changed:
            return
        policy_changed = any(key in changed for key in _POLICY_KEYS)
        await self.store.save_practice(actor.practice_id, after, policy_changed=policy_changed)
        await self.audit.record(
            actor.practice_id, actor.user_id, "practice.settings", actor.practice_id, changed
        )
        if policy_changed:
            self.propagator.notify()


def autoresponder_staff_only() -> PracticeError:
    return forbidden("Only the practice's team has an autoresponder.", Codes.STAFF_ONLY)


def practice_owner_only() -> PracticeError:
    return forbidden(
        "Only the practice owner may change the practice's settings.", Codes.OWNER_ONLY
    )
