"""Making the bridge bot a server admin, once the bridge has registered it.

The bridge needs Synapse's admin API (ending sessions, purging rooms), and its bot is registered
by the bridge on its first start, which may come minutes or days after Synapse loads the module.
Until then the module checks, quietly, with exponential back-off: after 0.25 s, 0.5 s, 1 s ...
up to ``retry_max_seconds`` (a minute by default) between two checks. It logs one line when it
starts waiting and one when the bot is promoted; each check is a debug line. The check reads the
user's record (``get_userinfo_by_id``), which logs nothing, unlike a login lookup.

When the bridge probes the module at start-up (``probe.py``, right after it registers the bot),
the probe asks for a check at once, so the bot is promoted without waiting out the back-off.

Runs only in the Synapse process that runs background tasks (the main process by default).
"""

from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import ModuleApi

logger = logging.getLogger("practice.synapse_module")

FIRST_RETRY_SECONDS = 0.25
MAX_RETRY_SECONDS = 60.0


class BotPromotion:
    def __init__(self, api: ModuleApi, bot: str, max_retry_seconds: float) -> None:
        self._api = api
        self._bot = bot
        self._max = max(max_retry_seconds, FIRST_RETRY_SECONDS)
        self._delay = FIRST_RETRY_SECONDS
        self._attempts = 0
        self._waiting = False  # the "waiting for the bridge" line was logged
        self._failing = False  # the last check failed, and that was logged
        self._done = False
        self._running = False
        self._pending: Any = None  # the scheduled next check (Twisted's IDelayedCall)

    @property
    def enabled(self) -> bool:
        return self._api.should_run_background_tasks()

    def start(self) -> None:
        if self.enabled:
            self._schedule(0)

    def check_now(self) -> None:
        """Check at once instead of at the next back-off step (the bridge has just started)."""
        if not self.enabled or self._done or self._running:
            return
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._schedule(0)

    def _schedule(self, seconds: float) -> None:
        self._pending = self._api.delayed_background_call(
            seconds * 1000, self._check, desc="practice_bot_admin"
        )

    async def _check(self) -> None:
        self._pending = None
        if self._done or self._running:
            return
        self._running = True
        try:
            self._done = await self._promote()
        finally:
            self._running = False
        if self._done:
            return
        delay = self._delay
        self._delay = min(self._delay * 2, self._max)
        logger.debug(
            "check %d: %s is not registered yet; next check in %.2f s",
            self._attempts,
            self._bot,
            delay,
        )
        self._schedule(delay)

    async def _promote(self) -> bool:
        """True once the bot is an admin; False to check again later."""
        self._attempts += 1
        try:
            info = await self._api.get_userinfo_by_id(self._bot)
            if info is None:
                if not self._waiting:
                    self._waiting = True
                    logger.info(
                        "practice-bridge module: waiting for the bridge to register its bot %s "
                        "(it does on its first start) to make it a server admin; checking "
                        "quietly, at most every %g s",
                        self._bot,
                        self._max,
                    )
                return False
            if not info.is_admin:
                await self._api.set_user_admin(self._bot, True)
                logger.info("made %s a server admin for the practice bridge", self._bot)
            self._failing = False
            return True
        except Exception:
            if not self._failing:
                self._failing = True
                logger.exception(
                    "could not check the admin status of %s; trying again with back-off",
                    self._bot,
                )
            return False
