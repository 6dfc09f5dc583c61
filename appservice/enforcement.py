"""The bot's Matrix calls for the rules enforced after the fact, and the module probe.

Implements :class:`bridge.rules.posthoc.MatrixActions` with plain client-server API requests
(spec section named on each). Sends take a caller-chosen transaction id: Synapse answers a
repeated ``PUT`` with the same id from the appservice with the first event instead of a second.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from mautrix.api import Method, PathBuilder
from mautrix.appservice import AppService
from mautrix.errors import MatrixRequestError
from mautrix.types import RoomID, UserID

from appservice.rooms import SynapseRooms
from bridge.constants import POLICY_STATE
from practice_bridge_synapse.names import PROBE_PATH

log = logging.getLogger("practice.rules")
_V3 = "/_matrix/client/v3"


def _q(value: str) -> str:
    return quote(value, safe="")


class MatrixEnforcement:
    def __init__(self, az: AppService, rooms: SynapseRooms) -> None:
        self.az = az
        self.rooms = rooms

    def _bot(self) -> Any:
        return self.az.intent.api

    async def probe_module(self) -> dict[str, Any] | None:
        """The module's self-description, or None when no practice-bridge module answers."""
        try:
            resp = await self._bot().request(Method.GET, PathBuilder(PROBE_PATH))
        except MatrixRequestError as e:
            if e.http_status in (404, 405):
                return None
            raise
        return resp if isinstance(resp, dict) else None

    async def policy_event(self, room_id: RoomID) -> tuple[str, str, dict[str, Any]] | None:
        """The room's current policy event as (event id, sender, content); None if it has none.

        GET /rooms/{roomId}/state/{eventType}/{stateKey}?format=event (spec: Getting events
        for a room), so that the sender can be checked.
        """
        try:
            ev = await self._bot().request(
                Method.GET,
                PathBuilder(f"{_V3}/rooms/{_q(room_id)}/state/{_q(POLICY_STATE)}/"),
                query_params={"format": "event"},
            )
        except MatrixRequestError as e:
            if e.http_status in (403, 404):
                return None  # No policy, or a room the bot is not in.
            raise
        content = ev.get("content")
        return (
            str(ev.get("event_id", "")),
            str(ev.get("sender", "")),
            content if isinstance(content, dict) else {},
        )

    async def redact(self, room_id: RoomID, event_id: str, reason: str, txn_id: str) -> None:
        """PUT /rooms/{roomId}/redact/{eventId}/{txnId} as the bot (spec: Redactions)."""
        await self._bot().request(
            Method.PUT,
            PathBuilder(f"{_V3}/rooms/{_q(room_id)}/redact/{_q(event_id)}/{_q(txn_id)}"),
            {"reason": reason},
        )

    async def notify(self, room_id: RoomID, content: dict[str, Any], txn_id: str) -> str:
        """PUT /rooms/{roomId}/send/m.room.message/{txnId} as the bot (spec: Sending events)."""
        resp = await self._bot().request(
            Method.PUT,
            PathBuilder(f"{_V3}/rooms/{_q(room_id)}/send/m.room.message/{_q(txn_id)}"),
            content,
        )
        return str(resp["event_id"])

    async def find_notice(self, room_id: RoomID, marker: str, event_id: str) -> bool:
        return await self.rooms.find_recent(room_id, marker, "event_id", event_id) is not None

    async def kick(self, room_id: RoomID, user_id: UserID, reason: str) -> None:
        await self.rooms.kick(room_id, user_id, reason)

    async def leave(self, room_id: RoomID, user_id: UserID) -> None:
        """The user leaves the room (as themselves, through the appservice) and forgets it."""
        await self.rooms.leave_and_forget(room_id, user_id)
