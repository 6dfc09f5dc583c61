"""What the domain needs from the homeserver, as a protocol the Matrix adapter implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from mautrix.types import RoomID, UserID


@dataclass(frozen=True)
class MatrixSession:
    user_id: UserID
    access_token: str
    device_id: str


@dataclass(frozen=True)
class MemberProfile:
    displayname: str | None
    avatar_url: str | None


class Homeserver(Protocol):
    base_url: str

    async def ensure_user(self, user_id: UserID, displayname: str | None) -> None:
        """Register a namespace user if needed and set its display name."""

    async def login(
        self, user_id: UserID, device_name: str, device_id: str | None = None
    ) -> MatrixSession:
        """A new access token and device (``device_id``, or one the homeserver picks) for a
        namespace user."""

    async def logout_all(self, user_id: UserID) -> int:
        """End every session of a user at once; return how many were ended."""

    async def devices(self, user_id: UserID) -> list[str]:
        """The ids of every device (session) the user has now."""

    async def delete_devices(self, user_id: UserID, device_ids: list[str]) -> None:
        """End these sessions of the user at once."""

    async def set_password(self, user_id: UserID, password: str) -> None:
        """Replace the user's password (the homeserver keeps its hash) without ending any
        session."""

    async def whoami(self, access_token: str) -> UserID | None:
        """The user an access token belongs to, or None if the homeserver refuses it."""


class Rooms(Protocol):
    """Room and per-user operations on the homeserver, done by the bot or as a namespace user."""

    async def create_room(
        self,
        *,
        name: str | None,
        room_version: str,
        is_direct: bool,
        initial_state: list[dict[str, Any]],
        power_levels: dict[str, Any],
        invitees: list[UserID],
    ) -> RoomID: ...

    async def join(self, room_id: RoomID, user_id: UserID) -> None: ...

    async def invite(self, room_id: RoomID, user_id: UserID) -> None: ...

    async def kick(self, room_id: RoomID, user_id: UserID, reason: str) -> None: ...

    async def unban(self, room_id: RoomID, user_id: UserID) -> None: ...

    async def joined_members(self, room_id: RoomID) -> dict[UserID, MemberProfile]:
        """Who is joined to the room now, with the name and picture it shows, as the bot
        sees it."""

    async def set_member_name(self, room_id: RoomID, user_id: UserID, name: str) -> None:
        """The user's member event in the room, as the user: joined, with ``name`` and no
        picture."""

    async def leave_and_forget(self, room_id: RoomID, user_id: UserID) -> None:
        """The user leaves the room and forgets it: it vanishes from their view."""

    async def send_message(
        self, room_id: RoomID, sender: UserID, content: dict[str, Any], txn_id: str
    ) -> str:
        """Send an m.room.message as a namespace user; the same txn_id never sends twice."""

    async def find_recent(
        self, room_id: RoomID, marker: str, field: str, value: str, limit: int = 100
    ) -> str | None:
        """The id of a recent event whose content[marker][field] equals value, if any."""

    async def send_state(
        self, room_id: RoomID, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> None: ...

    async def get_state(
        self, room_id: RoomID, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None: ...

    async def get_account_data(self, user_id: UserID, event_type: str) -> dict[str, Any]: ...

    async def set_account_data(
        self, user_id: UserID, event_type: str, content: dict[str, Any]
    ) -> None: ...

    async def set_room_account_data(
        self, user_id: UserID, room_id: RoomID, event_type: str, content: dict[str, Any]
    ) -> None: ...

    async def set_tag(
        self, user_id: UserID, room_id: RoomID, tag: str, content: dict[str, Any]
    ) -> None: ...

    async def remove_tag(self, user_id: UserID, room_id: RoomID, tag: str) -> None: ...

    async def sync(
        self, user_id: UserID, since: str | None, sync_filter: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def delete_room(self, room_id: RoomID) -> None:
        """Delete and purge a room for good; return when the homeserver has finished."""

    async def messages(
        self,
        room_id: RoomID,
        *,
        from_token: str | None,
        direction: str = "f",
        limit: int = 500,
        event_filter: dict[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the room's timeline as the bot, and the token of the next page (None
        at the end). ``from_token`` None starts at the first (``f``) or latest (``b``) event."""

    async def get_event(self, room_id: RoomID, event_id: str) -> dict[str, Any] | None:
        """One event as the bot sees it, or None if the homeserver does not have it."""

    async def token_at(self, room_id: RoomID, ts: int) -> str | None:
        """A token to page forwards from, just before the first event at or after ``ts`` (ms);
        None if no event is that late."""


class UserStateSource(Protocol):
    """Where a user's chat flags and read marks are read from (their Matrix account data and
    receipts), without a full /sync over every room they are in."""

    async def sync(
        self, user_id: UserID, since: str | None, sync_filter: dict[str, Any], wait_ms: int = 0
    ) -> dict[str, Any]:
        """GET /sync as the user; ``wait_ms`` > 0 long-polls until something matches."""

    async def tagged_rooms(self, user_id: UserID, tags: list[str]) -> dict[str, dict[str, Any]]:
        """{room_id: its m.tag ``tags``} for every room with one of these tags."""

    async def room_account_data(self, user_id: UserID) -> dict[str, dict[str, Any]]:
        """{room_id: {type: content}}: the user's room account data (tags aside)."""

    async def close(self) -> None: ...
