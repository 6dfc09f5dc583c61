"""Reading a message from the homeserver when its email is rendered (never stored beforehand).

The bridge keeps no message content: when a practice includes content in emails, each message
is fetched as the bot right before sending, so a message redacted in the meantime arrives empty
and is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

from mautrix.api import HTTPAPI, Method, PathBuilder
from mautrix.errors import MatrixRequestError


class MessageSource(Protocol):
    async def get_event(self, room_id: str, event_id: str) -> dict[str, Any] | None:
        """The event as the homeserver has it now, or None if it is gone."""


class BotMessageSource:
    def __init__(self, api: Callable[[], HTTPAPI]) -> None:
        self.api = api  # The bot's client API, which exists once the appservice has started.

    async def get_event(self, room_id: str, event_id: str) -> dict[str, Any] | None:
        """GET /rooms/{roomId}/event/{eventId} as the bot (spec: Client-Server API, Getting
        events for a room)."""
        room, event = quote(room_id, safe=""), quote(event_id, safe="")
        path = f"/_matrix/client/v3/rooms/{room}/event/{event}"
        try:
            found: dict[str, Any] = await self.api().request(Method.GET, PathBuilder(path))
        except MatrixRequestError as e:
            if e.http_status == 404:
                return None
            raise
        return found
