"""The Matrix side of the directory: accounts, logins and sessions on Synapse.

Implements :class:`bridge.ports.Homeserver` with the appservice's token. Ending sessions uses
Synapse's admin API, for which the bot is a server admin (the Synapse module promotes it; see
docs/admin.md for homeservers without the module).
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

from mautrix.api import Method, PathBuilder
from mautrix.appservice import AppService
from mautrix.appservice.state_store.memory import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.errors import MatrixRequestError
from mautrix.types import UserID

from bridge.ports import MatrixSession

log = logging.getLogger("practice.homeserver")


class MemoryASStateStore(MemoryStateStore, ASStateStore):
    """mautrix's membership and registration cache, in memory: Synapse stays the truth."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


def _admin_user_path(user_id: str, rest: str = "") -> PathBuilder:
    path = f"/_synapse/admin/v2/users/{quote(user_id, safe='')}"
    return PathBuilder(f"{path}/{rest}" if rest else path)


def _profile_path(user_id: str, field: str = "") -> PathBuilder:
    path = f"/_matrix/client/v3/profile/{quote(user_id, safe='')}"
    return PathBuilder(f"{path}/{field}" if field else path)


class SynapseHomeserver:
    def __init__(self, az: AppService, base_url: str) -> None:
        self.az = az
        self.base_url = base_url

    async def ensure_user(self, user_id: UserID, displayname: str | None) -> None:
        """Register the user if needed and give their profile the directory's name and no
        avatar (the directory has none): a name or avatar the user set is replaced."""
        intent = self.az.intent.user(user_id)
        await intent.ensure_registered()
        if not displayname:
            return
        try:
            profile = await intent.api.request(Method.GET, _profile_path(user_id))
        except MatrixRequestError:
            profile = {}
        if profile.get("displayname") != displayname:
            await self._set_profile(user_id, "displayname", displayname)
        if profile.get("avatar_url"):
            await self._set_profile(user_id, "avatar_url", "")

    async def _set_profile(self, user_id: UserID, field: str, value: str) -> None:
        """PUT /profile/{userId}/{field} as the bot, a server admin (spec: Profiles): Synapse
        allows it where users may not change their own profile, and updates the user's member
        events in every room they are in. Without admin rights, as the user."""
        path = _profile_path(user_id, field)
        try:
            await self.az.intent.api.request(Method.PUT, path, {field: value})
        except MatrixRequestError as e:
            if e.http_status not in (400, 403):
                raise
            await self.az.intent.user(user_id).api.request(Method.PUT, path, {field: value})

    async def login(
        self, user_id: UserID, device_name: str, device_id: str | None = None
    ) -> MatrixSession:
        """Log in as a namespace user (spec: client-server API, m.login.application_service)."""
        body = {
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": user_id},
            "initial_device_display_name": device_name,
        }
        if device_id is not None:
            body["device_id"] = device_id
        resp = await self.az.intent.api.request(
            Method.POST, PathBuilder("/_matrix/client/v3/login"), body
        )
        return MatrixSession(UserID(resp["user_id"]), resp["access_token"], resp["device_id"])

    async def logout_all(self, user_id: UserID) -> int:
        """Delete every device of the user with the admin API, which ends their tokens at once."""
        devices = await self.devices(user_id)
        await self.delete_devices(user_id, devices)
        return len(devices)

    async def devices(self, user_id: UserID) -> list[str]:
        """GET /_synapse/admin/v2/users/{user_id}/devices (none for an unknown user)."""
        try:
            resp = await self.az.intent.api.request(
                Method.GET, _admin_user_path(user_id, "devices")
            )
        except MatrixRequestError as e:
            if e.http_status == 404:
                return []
            raise
        return [d["device_id"] for d in resp.get("devices", [])]

    async def delete_devices(self, user_id: UserID, device_ids: list[str]) -> None:
        """POST /_synapse/admin/v2/users/{user_id}/delete_devices: their tokens end at once."""
        if device_ids:
            await self.az.intent.api.request(
                Method.POST,
                _admin_user_path(user_id, "delete_devices"),
                {"devices": device_ids},
            )
        log.info("Ended %d sessions of %s", len(device_ids), user_id)

    async def set_password(self, user_id: UserID, password: str) -> None:
        """PUT /_synapse/admin/v2/users/{user_id} with ``password`` and ``logout_devices:
        false``: Synapse hashes it and keeps only the hash; sessions stay."""
        await self.az.intent.api.request(
            Method.PUT,
            _admin_user_path(user_id),
            # As bytes: mautrix logs a dict body at debug level, bytes only by their size.
            json.dumps({"password": password, "logout_devices": False}).encode(),
        )
        log.info("Replaced the password of %s", user_id)

    async def bot_is_admin(self) -> bool:
        """Whether the bot may use Synapse's admin API (it reads its own admin record)."""
        try:
            await self.az.intent.api.request(Method.GET, _admin_user_path(self.az.bot_mxid))
        except MatrixRequestError as e:
            if e.http_status == 403:
                return False
            raise
        return True

    async def answers(self) -> None:
        """Raise unless the client API answers (spec: GET /_matrix/client/versions)."""
        url = f"{self.base_url}/_matrix/client/versions"
        async with self.az.http_session.get(url) as resp:
            resp.raise_for_status()

    async def whoami(self, access_token: str) -> UserID | None:
        """Who an access token belongs to (spec: GET /account/whoami), None if refused."""
        url = f"{self.base_url}/_matrix/client/v3/account/whoami"
        async with self.az.http_session.get(
            url, headers={"Authorization": f"Bearer {access_token}"}
        ) as resp:
            if resp.status in (401, 403):
                return None
            resp.raise_for_status()
            data = await resp.json()
        user_id = data.get("user_id")
        return UserID(user_id) if isinstance(user_id, str) else None
