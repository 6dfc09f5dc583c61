"""Practice-wide changes reach every affected room's policy state, in the background.

A change bumps the practice's policy version; a worker re-sends the policy of every chat that
is behind and records the version it sent. The work is found again from the database after a
restart, so an interrupted propagation finishes by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from mautrix.types import RoomID

from bridge.background import BackgroundLoop, LoopWorker

from .store import SettingsStore

log = logging.getLogger("practice.policy")
_BATCH = 50


class PolicyPropagator(LoopWorker):
    def __init__(self, store: SettingsStore, push: Callable[[RoomID], Awaitable[None]]) -> None:
        self.store = store
        self.push = push
        super().__init__(BackgroundLoop("policy-propagator", self._catch_up, log))

    async def _catch_up(self) -> None:
        while await self.run_once():
            pass

    async def run_once(self) -> int:
        """Bring one batch of chats up to date; return how many were updated."""
        stale = await self.store.stale_policies(_BATCH)
        for room_id, version in stale:
            await self.push(room_id)
            await self.store.mark_policy(room_id, version)
        if stale:
            log.info("Updated the policy of %d chats", len(stale))
        return len(stale)
