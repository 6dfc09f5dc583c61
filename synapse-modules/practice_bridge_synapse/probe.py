"""``GET /_synapse/client/org.practicebridge/module`` (the rules module) and ``.../media`` (the
media module): which module runs here, for which bot (and which rules); for the bridge, which
probes them at start-up and in ``practice-bridge check``.

Only the bridge (its appservice token, which Synapse authenticates as the bot), another
appservice of this server or a server admin gets the answer: a missing or unknown token gets
Synapse's own ``401``, any other user ``403 M_FORBIDDEN``. A probe by the bot also asks the bot
promotion (``bot.py``) to check at once: the bridge has just registered it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synapse.module_api import DirectServeJsonResource, ModuleApi
from synapse.module_api.errors import SynapseError

from .errors import Codes


class Probe(DirectServeJsonResource):
    def __init__(
        self, api: ModuleApi, bot: str, answer: dict[str, Any], on_bot: Callable[[], None]
    ) -> None:
        super().__init__()
        self._api = api
        self._bot = bot
        self._answer = answer
        self._on_bot = on_bot

    async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:  # noqa: N802
        requester = await self._api.get_user_by_req(request)
        user = requester.user.to_string()
        if user == self._bot:
            self._on_bot()
        elif not _by_appservice(requester) and not await self._api.is_user_admin(user):
            raise SynapseError(
                403,
                "Only the practice bridge and server admins may read this.",
                str(Codes.FORBIDDEN),
            )
        request.setHeader(b"Cache-Control", b"no-store")
        return 200, self._answer


def _by_appservice(requester: Any) -> bool:
    """Whether an appservice's token made the request (``app_service`` in older Synapses)."""
    return bool(
        getattr(requester, "app_service_id", None) or getattr(requester, "app_service", None)
    )
