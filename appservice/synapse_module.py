"""The practice-bridge Synapse module. Runs inside Synapse, on Twisted.

No asyncio, no aiohttp, no blocking I/O and no bridge imports: everything it needs comes from its
config (written by ``practice-bridge generate-registration``) and Synapse's module API.

Loaded through homeserver.yaml::

    modules:
      - module: appservice.synapse_module.PracticeRules
        config:
          bot_user_id: "@practicebot:example.com"
          user_regex: "@pb_(staff|client)_...:example\\\\.com"
          client_regex: "@pb_client_...:example\\\\.com"
          promote_bot_to_admin: true

What it does today: it makes the bridge bot a server admin once the bot is registered (the
bridge needs the admin API to purge rooms and end sessions), when ``promote_bot_to_admin`` is
set. The practice rules are enforced here as they are added.
"""

from __future__ import annotations

import logging
import re
from typing import Any

logger = logging.getLogger("practice.synapse_module")

_RETRY_MSEC = 250.0


class ModuleConfigError(Exception):
    pass


class PracticeRules:
    def __init__(self, config: dict[str, Any], api: Any) -> None:
        self._api = api
        self._bot = config["bot_user_id"]
        self._user_re = re.compile(config["user_regex"])
        self._client_re = re.compile(config["client_regex"])
        self._promote = bool(config.get("promote_bot_to_admin", False))
        if self._promote and api.should_run_background_tasks():
            api.delayed_background_call(0, self._ensure_bot_admin, desc="practice_bot_admin")
        logger.info("practice-bridge module loaded for bot %s", self._bot)

    @staticmethod
    def parse_config(config: dict[str, Any]) -> dict[str, Any]:
        for key in ("bot_user_id", "user_regex", "client_regex"):
            if not isinstance(config.get(key), str) or not config[key]:
                raise ModuleConfigError(f"practice-bridge module: '{key}' is required")
            if key != "bot_user_id":
                try:
                    re.compile(config[key])
                except re.error as e:
                    raise ModuleConfigError(f"practice-bridge module: '{key}': {e}") from None
        return config

    def is_client(self, user_id: str) -> bool:
        return bool(self._client_re.fullmatch(user_id))

    async def _ensure_bot_admin(self) -> None:
        """Promote the bot to server admin once it exists; retry until it does."""
        try:
            if await self._api.check_user_exists(self._bot):
                if not await self._api.is_user_admin(self._bot):
                    await self._api.set_user_admin(self._bot, True)
                    logger.info("made %s a server admin for the practice bridge", self._bot)
                return
        except Exception:
            logger.exception("could not check the admin status of %s", self._bot)
        self._api.delayed_background_call(
            _RETRY_MSEC, self._ensure_bot_admin, desc="practice_bot_admin"
        )
