"""Rooms and account data on Synapse, as the bot or as a namespace user (appservice masquerade).

Implements :class:`bridge.ports.Rooms` with plain client-server API requests (spec section named
on each) so that nothing depends on mautrix's cached room state.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

from mautrix.api import Method, PathBuilder
from mautrix.appservice import AppService
from mautrix.errors import MatrixRequestError
from mautrix.types import RoomID, UserID

from bridge.chats.layout import create_room_body
from bridge.errors import Codes, PracticeError
from bridge.ports import MemberProfile

log = logging.getLogger("practice.rooms")
_V3 = "/_matrix/client/v3"


def _q(value: str) -> str:
    return quote(value, safe="")


async def _get_found(
    api: Any, path: str, query: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """GET ``path``: the answer, or None when the homeserver has no such thing (404)."""
    try:
        resp: dict[str, Any] = await api.request(Method.GET, PathBuilder(path), query_params=query)
    except MatrixRequestError as e:
        if e.http_status == 404:
            return None
        raise
    return resp


async def _put(api: Any, path: str, content: dict[str, Any]) -> None:
    """PUT ``content`` at ``path`` (the answer carries nothing the bridge needs)."""
    await api.request(Method.PUT, PathBuilder(path), content)


class SynapseRooms:
    def __init__(self, az: AppService, delete_timeout: float = 120) -> None:
        self.az = az
        self.delete_timeout = delete_timeout

    def _bot(self) -> Any:
        return self.az.intent.api

    def _as(self, user_id: UserID) -> Any:
        return self.az.intent.user(user_id).api

    async def create_room(
        self,
        *,
        name: str | None,
        room_version: str,
        is_direct: bool,
        initial_state: list[dict[str, Any]],
        power_levels: dict[str, Any],
        invitees: list[UserID],
    ) -> RoomID:
        """POST /createRoom (spec: Client-Server API, Room creation)."""
        body = create_room_body(
            name=name,
            is_direct=is_direct,
            initial_state=initial_state,
            power_levels=power_levels,
            invitees=invitees,
            room_version=room_version,
        )
        resp = await self._bot().request(Method.POST, PathBuilder(f"{_V3}/createRoom"), body)
        return RoomID(resp["room_id"])

    async def join(self, room_id: RoomID, user_id: UserID) -> None:
        """POST /rooms/{roomId}/join as the user (spec: Joining rooms)."""
        await self.az.intent.user(user_id).ensure_registered()
        await self._as(user_id).request(
            Method.POST, PathBuilder(f"{_V3}/rooms/{_q(room_id)}/join"), {}
        )

    async def invite(self, room_id: RoomID, user_id: UserID) -> None:
        """POST /rooms/{roomId}/invite (spec: Room membership)."""
        try:
            await self._bot().request(
                Method.POST,
                PathBuilder(f"{_V3}/rooms/{_q(room_id)}/invite"),
                {"user_id": user_id},
            )
        except MatrixRequestError as e:
            if "already in the room" not in (e.message or ""):
                raise

    async def kick(self, room_id: RoomID, user_id: UserID, reason: str) -> None:
        """POST /rooms/{roomId}/kick (spec: Room membership)."""
        try:
            await self._bot().request(
                Method.POST,
                PathBuilder(f"{_V3}/rooms/{_q(room_id)}/kick"),
                {"user_id": user_id, "reason": reason},
            )
        except MatrixRequestError as e:
            if e.http_status != 403:
                raise
            log.info("%s was not in %s", user_id, room_id)

    async def unban(self, room_id: RoomID, user_id: UserID) -> None:
        """POST /rooms/{roomId}/unban (spec: Room membership)."""
        await self._bot().request(
            Method.POST, PathBuilder(f"{_V3}/rooms/{_q(room_id)}/unban"), {"user_id": user_id}
        )

    async def joined_members(self, room_id: RoomID) -> dict[UserID, MemberProfile]:
        """GET /rooms/{roomId}/joined_members as the bot (spec: Room membership)."""
        resp = await self._bot().request(
            Method.GET, PathBuilder(f"{_V3}/rooms/{_q(room_id)}/joined_members")
        )
        return {
            UserID(user): MemberProfile(member.get("display_name"), member.get("avatar_url"))
            for user, member in (resp.get("joined") or {}).items()
        }

    async def set_member_name(self, room_id: RoomID, user_id: UserID, name: str) -> None:
        """PUT /rooms/{roomId}/state/m.room.member/{userId} as the user (spec: Room
        membership): their own join again, with the name and without a picture."""
        await _put(
            self._as(user_id),
            f"{_V3}/rooms/{_q(room_id)}/state/m.room.member/{_q(user_id)}",
            {"membership": "join", "displayname": name},
        )

    async def leave_and_forget(self, room_id: RoomID, user_id: UserID) -> None:
        """POST /rooms/{roomId}/leave then /forget as the user (spec: Leaving rooms)."""
        api = self._as(user_id)
        try:
            await api.request(Method.POST, PathBuilder(f"{_V3}/rooms/{_q(room_id)}/leave"), {})
        except MatrixRequestError as e:
            if e.http_status != 403:
                raise
        await api.request(Method.POST, PathBuilder(f"{_V3}/rooms/{_q(room_id)}/forget"), {})

    async def send_message(
        self, room_id: RoomID, sender: UserID, content: dict[str, Any], txn_id: str
    ) -> str:
        """PUT /rooms/{roomId}/send/m.room.message/{txnId} as the user (spec: Sending events)."""
        resp = await self._as(sender).request(
            Method.PUT,
            PathBuilder(f"{_V3}/rooms/{_q(room_id)}/send/m.room.message/{_q(txn_id)}"),
            content,
        )
        return str(resp["event_id"])

    async def find_recent(
        self, room_id: RoomID, marker: str, field: str, value: str, limit: int = 100
    ) -> str | None:
        """Look back through the room's latest events (spec: GET /rooms/{roomId}/messages)."""
        resp = await self._bot().request(
            Method.GET,
            PathBuilder(f"{_V3}/rooms/{_q(room_id)}/messages"),
            query_params={"dir": "b", "limit": str(limit)},
        )
        for ev in resp.get("chunk", []):
            mark = (ev.get("content") or {}).get(marker)
            if isinstance(mark, dict) and mark.get(field) == value:
                return str(ev["event_id"])
        return None

    async def messages(
        self,
        room_id: RoomID,
        *,
        from_token: str | None,
        direction: str = "f",
        limit: int = 500,
        event_filter: dict[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """GET /rooms/{roomId}/messages as the bot (spec: Client-Server API, Getting events for
        a room). Without ``end`` (or with an empty chunk) there is nothing more to read."""
        params = {"dir": direction, "limit": str(limit)}
        if from_token is not None:
            params["from"] = from_token
        if event_filter is not None:
            params["filter"] = json.dumps(event_filter, separators=(",", ":"))
        resp = await self._bot().request(
            Method.GET,
            PathBuilder(f"{_V3}/rooms/{_q(room_id)}/messages"),
            query_params=params,
        )
        end = resp.get("end")
        return list(resp.get("chunk") or []), (str(end) if end else None)

    async def get_event(self, room_id: RoomID, event_id: str) -> dict[str, Any] | None:
        """GET /rooms/{roomId}/event/{eventId} as the bot (spec: Getting events for a room)."""
        return await _get_found(self._bot(), f"{_V3}/rooms/{_q(room_id)}/event/{_q(event_id)}")

    async def token_at(self, room_id: RoomID, ts: int) -> str | None:
        """GET /timestamp_to_event (spec: v1, dir=f) for the first event at or after ``ts``,
        then GET /context/{eventId} for a token just before it."""
        found = await _get_found(
            self._bot(),
            f"/_matrix/client/v1/rooms/{_q(room_id)}/timestamp_to_event",
            {"ts": str(ts), "dir": "f"},
        )
        if found is None:
            return None
        context = await self._bot().request(
            Method.GET,
            PathBuilder(f"{_V3}/rooms/{_q(room_id)}/context/{_q(found['event_id'])}"),
            query_params={"limit": "0"},
        )
        return str(context["start"])

    async def send_state(
        self, room_id: RoomID, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> None:
        """PUT /rooms/{roomId}/state/{eventType}/{stateKey} (spec: Sending events)."""
        await _put(
            self._bot(),
            f"{_V3}/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}",
            content,
        )

    async def get_state(
        self, room_id: RoomID, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        return await _get_found(
            self._bot(), f"{_V3}/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}"
        )

    async def get_account_data(self, user_id: UserID, event_type: str) -> dict[str, Any]:
        """GET /user/{userId}/account_data/{type} (spec: Client config)."""
        found = await _get_found(
            self._as(user_id), f"{_V3}/user/{_q(user_id)}/account_data/{_q(event_type)}"
        )
        return {} if found is None else found

    async def set_account_data(
        self, user_id: UserID, event_type: str, content: dict[str, Any]
    ) -> None:
        await _put(
            self._as(user_id), f"{_V3}/user/{_q(user_id)}/account_data/{_q(event_type)}", content
        )

    async def set_room_account_data(
        self, user_id: UserID, room_id: RoomID, event_type: str, content: dict[str, Any]
    ) -> None:
        await _put(
            self._as(user_id),
            f"{_V3}/user/{_q(user_id)}/rooms/{_q(room_id)}/account_data/{_q(event_type)}",
            content,
        )

    async def set_tag(
        self, user_id: UserID, room_id: RoomID, tag: str, content: dict[str, Any]
    ) -> None:
        """PUT /user/{userId}/rooms/{roomId}/tags/{tag} (spec: Room tagging)."""
        await _put(
            self._as(user_id),
            f"{_V3}/user/{_q(user_id)}/rooms/{_q(room_id)}/tags/{_q(tag)}",
            content,
        )

    async def remove_tag(self, user_id: UserID, room_id: RoomID, tag: str) -> None:
        await self._as(user_id).request(
            Method.DELETE,
            PathBuilder(f"{_V3}/user/{_q(user_id)}/rooms/{_q(room_id)}/tags/{_q(tag)}"),
        )

    async def sync(
        self, user_id: UserID, since: str | None, sync_filter: dict[str, Any]
    ) -> dict[str, Any]:
        """GET /sync as the user, without waiting (spec: Syncing)."""
        params = {"filter": json.dumps(sync_filter), "timeout": "0"}
        if since:
            params["since"] = since
        resp: dict[str, Any] = await self._as(user_id).request(
            Method.GET, PathBuilder(f"{_V3}/sync"), query_params=params
        )
        return resp

    async def delete_room(self, room_id: RoomID) -> None:
        """Synapse admin API: DELETE /_synapse/admin/v2/rooms/{roomId} with purge, then wait."""
        resp = await self._bot().request(
            Method.DELETE,
            PathBuilder(f"/_synapse/admin/v2/rooms/{_q(room_id)}"),
            {"purge": True, "block": False, "force_purge": True},
        )
        delete_id = resp["delete_id"]
        status_path = PathBuilder(f"/_synapse/admin/v2/rooms/delete_status/{_q(delete_id)}")
        deadline = asyncio.get_running_loop().time() + self.delete_timeout
        while asyncio.get_running_loop().time() < deadline:
            status = await self._bot().request(Method.GET, status_path)
            state = status.get("status")
            if state == "complete":
                return
            if state == "failed":
                raise delete_failed(str(status.get("error", ""))[:200])
            await asyncio.sleep(0.2)
        raise delete_pending()


def delete_failed(reason: str) -> PracticeError:
    return PracticeError(
        Codes.DELETE_FAILED,
        "The homeserver could not delete the chat; nothing was removed from the chat list. "
        "Try again.",
        502,
        reason=reason,
    )


def delete_pending() -> PracticeError:
    return PracticeError(
        Codes.DELETE_PENDING, "The homeserver is still deleting the chat; try again shortly.", 504
    )
