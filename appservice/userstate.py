"""A user's chat flags and read marks on Synapse, read as that user (appservice masquerade).

Implements :class:`bridge.ports.UserStateSource`:

- ``sync``: ``GET /sync`` (spec: Syncing); a long-poll (``wait_ms``) runs on a connection pool
  of its own, so users being followed never take the connections the API's requests need;
- ``tagged_rooms``: simplified sliding sync (MSC4186) with one list filtered by tags and the
  account-data extension: only the tagged rooms are looked at, however many rooms the user is in.
  Synapse serves it to a device only, so the bridge logs each user in once with a device of its
  own (``PRACTICEBRIDGE``, shown in the user's sessions as "practice-bridge chat list");
- ``room_account_data``: Synapse's admin API (the bot is a server admin), one read for every room.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
from mautrix.api import Method, PathBuilder
from mautrix.appservice import AppService
from mautrix.errors import MatrixRequestError
from mautrix.types import UserID

from bridge.constants import CHAT_LIST_DEVICE

_V3 = "/_matrix/client/v3"
_SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
DEVICE_ID = CHAT_LIST_DEVICE
DEVICE_NAME = "practice-bridge chat list"
# More tagged rooms than this and the caller reads the user's state another way.
TAGGED_MAX = 5000


class TooManyTagged(Exception):
    """The user has more tagged rooms than one sliding sync window holds."""


class SynapseUserState:
    def __init__(self, az: AppService, base_url: str) -> None:
        self.az = az
        self.base_url = base_url.rstrip("/")
        self._polls: aiohttp.ClientSession | None = None

    def _as(self, user_id: UserID) -> Any:
        return self.az.intent.user(user_id).api

    async def sync(
        self, user_id: UserID, since: str | None, sync_filter: dict[str, Any], wait_ms: int = 0
    ) -> dict[str, Any]:
        params = {"filter": json.dumps(sync_filter), "timeout": str(wait_ms)}
        if since:
            params["since"] = since
        if not wait_ms:
            resp: dict[str, Any] = await self._as(user_id).request(
                Method.GET, PathBuilder(f"{_V3}/sync"), query_params=params
            )
            return resp
        if self._polls is None:
            # As many connections as users followed (the mirror bounds that number).
            self._polls = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with self._polls.get(
            f"{self.base_url}{_V3}/sync",
            params={**params, "user_id": user_id},
            headers={"Authorization": f"Bearer {self.az.as_token}"},
            timeout=aiohttp.ClientTimeout(total=wait_ms / 1000 + 60),
        ) as r:
            body = await r.json(content_type=None)
            if r.status != 200:
                raise MatrixRequestError(r.status, str(body)[:200])
            return dict(body)

    async def tagged_rooms(self, user_id: UserID, tags: list[str]) -> dict[str, dict[str, Any]]:
        body = {
            "conn_id": "practice-bridge-tags",
            "lists": {
                "tagged": {
                    "ranges": [[0, TAGGED_MAX - 1]],
                    "timeline_limit": 0,
                    "required_state": [],
                    "filters": {"tags": tags},
                }
            },
            "extensions": {"account_data": {"enabled": True, "lists": ["tagged"], "rooms": []}},
        }
        try:
            resp = await self._sliding(user_id, body)
        except MatrixRequestError as e:
            if e.errcode != "M_UNKNOWN_DEVICE":
                raise
            await self._own_device(user_id)
            resp = await self._sliding(user_id, body)
        if int((resp.get("lists") or {}).get("tagged", {}).get("count") or 0) > TAGGED_MAX:
            raise TooManyTagged(user_id)
        rooms = ((resp.get("extensions") or {}).get("account_data") or {}).get("rooms") or {}
        found: dict[str, dict[str, Any]] = {}
        for room_id, data in rooms.items():
            events = (
                data
                if isinstance(data, list)
                else [{"type": t, "content": c} for t, c in data.items()]
            )
            for ev in events:
                if isinstance(ev, dict) and ev.get("type") == "m.tag":
                    found[room_id] = dict((ev.get("content") or {}).get("tags") or {})
        return found

    async def _sliding(self, user_id: UserID, body: dict[str, Any]) -> dict[str, Any]:
        resp: dict[str, Any] = await self._as(user_id).request(
            Method.POST,
            PathBuilder(_SLIDING),
            body,
            query_params={"timeout": "0", "device_id": DEVICE_ID},
        )
        return resp

    async def _own_device(self, user_id: UserID) -> None:
        """Log the user in once with the bridge's device (spec: m.login.application_service);
        the access token is not kept: the device is what sliding sync asks for."""
        await self.az.intent.api.request(
            Method.POST,
            PathBuilder(f"{_V3}/login"),
            {
                "type": "m.login.application_service",
                "identifier": {"type": "m.id.user", "user": user_id},
                "device_id": DEVICE_ID,
                "initial_device_display_name": DEVICE_NAME,
            },
        )

    async def room_account_data(self, user_id: UserID) -> dict[str, dict[str, Any]]:
        resp = await self.az.intent.api.request(
            Method.GET,
            PathBuilder(f"/_synapse/admin/v1/users/{quote(user_id, safe='')}/accountdata"),
        )
        rooms = (resp.get("account_data") or {}).get("rooms") or {}
        return {room: dict(data) for room, data in rooms.items() if isinstance(data, dict)}

    async def close(self) -> None:
        if self._polls is not None:
            await self._polls.close()
            self._polls = None
