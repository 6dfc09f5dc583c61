"""Practice-wide changes reach every affected room's policy state, in the background.

A change bumps the practice's policy version; a worker re-sends the policy of every chat that
is behind and records the version it sent. The work is found again from the database after a
restart, so an interrupted propagation finishes by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mautrix.types import RoomID

from .store import SettingsStore

log = logging.getLogger("practice.policy")
_BATCH = 50


class PolicyPropagator:
    def __init__(self, store: SettingsStore, push: Callable[[RoomID], Awaitable[None]]) -> None:
        self.store = store
        self.push = push
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="policy-propagator")
            self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def notify(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while await self.run_once():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Propagating policy changes failed; retrying in 5 s")
                await asyncio.sleep(5)
                self._wake.set()

    async def run_once(self) -> int:
        """Bring one batch of chats up to date; return how many were updated."""
        stale = await self.store.stale_policies(_BATCH)
        for room_id, version in stale:
            await self.push(room_id)
            await self.store.mark_policy(room_id, version)
        if stale:
            log.info("Updated the policy of %d chats", len(stale))
        return len(stale)
