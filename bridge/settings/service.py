"""GET|PUT /settings: the caller's preferences and, for an owner, the practice's rules."""

from __future__ import annotations

import logging
from typing import Any

from bridge.audit import AuditLog
from bridge.chats.actors import Actor
from bridge.constants import PREFERENCES_EVENT
from bridge.directory import DirectoryStore
from bridge.errors import Codes, forbidden
from bridge.ports import Rooms

from . import model
from .propagate import PolicyPropagator
from .store import SettingsStore

log = logging.getLogger("practice.settings")
# Practice settings that the policy state of rooms carries.
_POLICY_KEYS = ("client_message_limit",)


class SettingsService:
    def __init__(
        self,
        store: SettingsStore,
        directory: DirectoryStore,
        rooms: Rooms,
        audit: AuditLog,
        propagator: PolicyPropagator,
    ) -> None:
        self.store = store
        self.directory = directory
        self.rooms = rooms
        self.audit = audit
        self.propagator = propagator

    async def user_settings(self, user_id: str) -> dict[str, Any]:
        return model.user_settings(await self.store.user(user_id))

    async def get(self, actor: Actor) -> dict[str, Any]:
        settings = await self.user_settings(actor.user_id)
        if actor.staff is None:
            settings.pop("autoresponder")
        # What a frontend shows the caller: the autoresponder (staff), the practice's rules
        # (the owner), read markers (staff).
        settings["role"] = actor.staff.role if actor.staff is not None else "client"
        practice = await self.directory.get_practice(actor.practice_id)
        assert practice is not None
        settings["practice"] = model.practice_settings(practice.settings)
        pending = await self.store.count_stale(actor.practice_id)
        settings["practice_applied"] = pending == 0
        settings["practice_pending_chats"] = pending
        return settings

    async def put(self, actor: Actor, patch: Any) -> dict[str, Any]:
        user_patch = model.validate_user_patch(patch, is_staff=actor.is_staff)
        practice_patch = None
        if "practice" in patch:
            if not actor.is_owner:
                raise forbidden(
                    "Only the practice owner may change the practice's settings.",
                    Codes.OWNER_ONLY,
                )
            practice_patch = model.validate_practice_patch(patch["practice"])
        if user_patch:
            await self._put_user(actor, user_patch)
        if practice_patch:
            await self._put_practice(actor, practice_patch)
        return await self.get(actor)

    async def _put_user(self, actor: Actor, patch: dict[str, Any]) -> None:
        stored = await self.store.user(actor.user_id) or {}
        merged = model.merge(model.user_settings(stored), patch)
        model.check_autoresponder(merged)
        await self.store.save_user(actor.user_id, merged)
        if any(key in patch for key in model.DEVICE_PREFERENCES):
            await self.rooms.set_account_data(
                actor.user_id,
                PREFERENCES_EVENT,
                {key: merged[key] for key in model.DEVICE_PREFERENCES},
            )

    async def _put_practice(self, actor: Actor, patch: dict[str, Any]) -> None:
        practice = await self.directory.get_practice(actor.practice_id)
        assert practice is not None
        before = model.practice_settings(practice.settings)
        after = model.merge(before, patch)
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
